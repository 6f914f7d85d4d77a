// What an app's request for a host outside the mesh gets (docs/egress.md), under the names of
// Istio's outboundTrafficPolicy.mode, which the product contract uses: ALLOW_ANY passes it
// through to the host the app named; REGISTRY_ONLY refuses it unless a Service of type
// ExternalName declares the host (external-services.ts).
import { UsageError } from "../../shared/command.ts";

export const OUTBOUND_TRAFFIC = ["ALLOW_ANY", "REGISTRY_ONLY"] as const;
export type OutboundTraffic = (typeof OUTBOUND_TRAFFIC)[number];

// weft's names before it took Istio's: still accepted, so an existing install or Helm value keeps working.
const OLD_NAMES: Readonly<Record<string, OutboundTraffic>> = { passthrough: "ALLOW_ANY", refuse: "REGISTRY_ONLY" };

/** The setting `text` names, or a UsageError saying what `flag` accepts. */
export function parseOutboundTraffic(text: string, flag: string): OutboundTraffic {
  if ((OUTBOUND_TRAFFIC as readonly string[]).includes(text)) return text as OutboundTraffic;
  if (Object.hasOwn(OLD_NAMES, text)) return OLD_NAMES[text]!;
  throw new UsageError(
    `${flag} must be ${OUTBOUND_TRAFFIC.join(" or ")} (or weft's older names, ${Object.keys(OLD_NAMES).join(" and ")}), not "${text}"`,
  );
}

/** Added to the 404 a sidecar gives a host it has no route for under REGISTRY_ONLY: the setting, and the two ways past it. */
export const REGISTRY_ONLY_REASON =
  "outbound traffic is REGISTRY_ONLY, so the mesh refuses hosts outside it that no Service of type ExternalName declares: declare this one, or let every host through with --outbound-traffic ALLOW_ANY (docs/egress.md)";
