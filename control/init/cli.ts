// `weft init` (its command line: bin/commands/init.ts): redirects the pod's TCP traffic through
// the proxy, as the injected weft-init container does before anything else in the pod starts.
// Installs the rules of rules.ts with one `iptables-restore --noflush` per address family (IPv4
// and IPv6), then routing.ts's `ip` commands where Services are captured, and prints what it
// installed, which is what `kubectl logs POD -c weft-init` shows.
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import process from "node:process";
import { UsageError } from "../../shared/command.ts";
import { cleanupInput, installInput, MAX_CAPTURED_PORT, optionProblems, type Family, type InitOptions } from "./rules.ts";
import { cleanupRouting, serviceRouting, type IpCommand } from "./routing.ts";

const FAMILIES: { family: Family; save: string; restore: string }[] = [
  { family: "IPv4", save: "iptables-save", restore: "iptables-restore" },
  { family: "IPv6", save: "ip6tables-save", restore: "ip6tables-restore" },
];

/** What `weft init`'s flags give (bin/commands/init.ts declares them, and checks at compile time that they fit this). */
export interface InitValues {
  "proxy-uid": number;
  "inbound-port": number;
  "outbound-port": number;
  "include-inbound-ports"?: number[] | "*";
  "exclude-inbound-ports": number[];
  "include-outbound-ports": number[] | "*";
  "exclude-outbound-ports": number[];
  "service-cidr": string[];
  "dry-run": boolean;
  cleanup: boolean;
}

/** Installs the rules the flags ask for (or removes them, or prints them with --dry-run). */
export async function init(values: InitValues): Promise<number> {
  if (values.cleanup) {
    if (values["dry-run"])
      throw new UsageError("--cleanup and --dry-run do not go together: --dry-run prints the rules that would be installed");
    return apply("removed weft's rules, chains and routes", cleanupInput, cleanupRouting());
  }
  if (values["include-inbound-ports"] === undefined) {
    throw new UsageError(
      '--include-inbound-ports is required: the app\'s ports, like --include-inbound-ports 8080 ("*" for every port, "" redirects no inbound traffic)',
    );
  }
  const options: InitOptions = {
    proxyUid: values["proxy-uid"],
    inboundPort: values["inbound-port"],
    outboundPort: values["outbound-port"],
    inboundPorts: values["include-inbound-ports"],
    excludeInboundPorts: values["exclude-inbound-ports"],
    outboundPorts: values["include-outbound-ports"],
    excludeOutboundPorts: values["exclude-outbound-ports"],
    serviceCidrs: values["service-cidr"],
  };
  const conflicts = optionProblems(options);
  if (conflicts.length > 0) throw new UsageError(...conflicts);

  if (values["dry-run"]) {
    for (const { family, restore } of FAMILIES) {
      process.stdout.write(
        `# ${family}: the input of ${restore} --noflush on a pod without weft's rules\n${installInput(options, family, "")}`,
      );
    }
    const routing = routingFor(options);
    if (routing.length > 0) process.stdout.write(`# then, in order:\n${routing.map((c) => `ip ${c.args.join(" ")}\n`).join("")}`);
    return 0;
  }
  return apply(summary(options), (current, family) => installInput(options, family, current), routingFor(options));
}

const routingFor = (o: InitOptions) => (o.serviceCidrs.length > 0 ? serviceRouting(o.serviceCidrs) : []);

/**
 * Runs `input` through iptables-restore --noflush for each family the kernel has, after reading
 * the tables it changes, then the `ip` commands.
 */
async function apply(done: string, input: (current: string, family: Family) => string, routing: IpCommand[]): Promise<number> {
  for (const { family, save, restore } of FAMILIES) {
    // A kernel booted without IPv6 has no IPv6 nat table, and no IPv6 traffic to redirect.
    if (family === "IPv6" && !existsSync("/proc/net/if_inet6")) {
      process.stdout.write("weft init: IPv6 is off in this kernel: no IPv6 rules\n");
      continue;
    }
    const saved = await run(save, []);
    if (saved.failure) return fail(saved.failure);
    const text = input(saved.stdout, family);
    // No -w: with iptables-legacy it takes a lock file under /run, which the injected container's
    // read-only root filesystem does not allow; nothing else changes a new pod's rules meanwhile.
    const restored = await run(restore, ["--noflush"], text);
    if (restored.failure) return fail(`${restored.failure}\nthe input was:\n${text}`);
    process.stdout.write(`weft init: ${family}: ${restore} --noflush <<EOF\n${text}EOF\n`);
  }
  for (const command of routing) {
    const ran = await run("ip", command.args);
    if (ran.failure && !command.mayFail) return fail(ran.failure);
    if (!ran.failure) process.stdout.write(`weft init: ip ${command.args.join(" ")}\n`);
  }
  process.stdout.write(`weft init: ${done}\n`);
  return 0;
}

function summary(o: InitOptions): string {
  const list = (ports: number[]) => (ports.length > 0 ? [...ports].sort((a, b) => a - b).join(",") : "none");
  const described = (ports: number[] | "*", exclude: number[]) => {
    const excluded = new Set(exclude);
    return ports === "*"
      ? `every port${excluded.size > 0 ? ` but ${list([...excluded])}` : ""}`
      : `ports ${list(ports.filter((p) => !excluded.has(p)))}`;
  };
  const inbound =
    o.inboundPorts === "*"
      ? `${described("*", [...o.excludeInboundPorts, o.inboundPort, o.outboundPort])} up to ${MAX_CAPTURED_PORT} goes to the sidecar on port + ${MAX_CAPTURED_PORT + 1} (higher ports are refused)`
      : `${described(o.inboundPorts, [])} goes to the sidecar on port + ${MAX_CAPTURED_PORT + 1}`;
  const services =
    o.serviceCidrs.length > 0
      ? `; TCP to other ports up to ${MAX_CAPTURED_PORT} of Services (${o.serviceCidrs.join(", ")}) goes to the sidecar on the Service's address, port + ${MAX_CAPTURED_PORT + 1}`
      : "";
  return (
    `inbound TCP to ${inbound}; outbound TCP to ${described(o.outboundPorts, o.excludeOutboundPorts)} goes to ${o.outboundPort}${services}, ` +
    `except from UID ${o.proxyUid} and over loopback`
  );
}

function fail(message: string): number {
  process.stderr.write(`weft init: ${message}\n`);
  return 1;
}

/** Runs a command; `failure` says what went wrong and what to do. */
function run(command: string, args: string[], input?: string): Promise<{ stdout: string; failure?: string }> {
  return new Promise((resolve) => {
    const child = spawn(command, args, { stdio: ["pipe", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    child.on("error", (e: NodeJS.ErrnoException) => {
      const fix =
        e.code === "ENOENT"
          ? `: install ${command === "ip" ? "iproute2 (Debian: apt-get install iproute2)" : "iptables (Debian: apt-get install iptables)"} and put it on PATH; the image that runs weft-init needs it too`
          : "";
      resolve({ stdout, failure: `cannot run ${command}: ${e.message}${fix}` });
    });
    child.on("close", (code) => {
      if (code === 0) resolve({ stdout });
      else {
        const hint = /permission denied|not permitted/i.test(stderr)
          ? " (weft init needs root with NET_ADMIN and NET_RAW in the pod's network namespace)"
          : "";
        resolve({ stdout, failure: `${command} ${args.join(" ")} failed with exit code ${code}${hint}: ${stderr.trim()}` });
      }
    });
    child.stdin.on("error", () => {}); // a command that dies early closes its stdin: its exit says why
    child.stdin.end(input ?? "");
  });
}
