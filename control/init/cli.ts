// `weft init`: redirects the pod's TCP traffic through the proxy, as the injected weft-init
// container does before anything else in the pod starts. Reads the flags, then installs the
// rules of rules.ts with one `iptables-restore --noflush` per address family (IPv4 and IPv6) and
// prints what it installed, which is what `kubectl logs POD -c weft-init` shows.
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import process from "node:process";
import { parseArgs } from "node:util";
import { DEFAULT_OUTBOUND_PORTS, cleanupInput, installInput, optionProblems, type Family, type InitOptions } from "./rules.ts";

const USAGE = `usage: weft init --include-inbound-ports PORTS [options]
       weft init --cleanup

Redirects the pod's TCP traffic through the weft proxy with iptables rules in the nat table
(chains WEFT_*), for IPv4 and IPv6. Needs root with NET_ADMIN in the pod's network namespace.
Running it again replaces weft's rules. See docs/injection.md, "Traffic redirection".

  --include-inbound-ports PORTS      the app's ports ("8080,9090"; "" for none): TCP coming in to
                                     them goes to the inbound port
  --include-outbound-ports PORTS|*   destination ports whose outgoing TCP goes to the outbound
                                     port (default ${DEFAULT_OUTBOUND_PORTS.join(",")}; * for every port)
  --exclude-outbound-ports PORTS     destination ports never redirected outbound
  --proxy-uid UID                    the proxy's user, never redirected (default 1337)
  --inbound-port PORT                the proxy's inbound listener (default 15006)
  --outbound-port PORT               the proxy's outbound listener (default 15001)
  --dry-run                          print the iptables-restore input and change nothing
  --cleanup                          remove weft's rules and chains
`;

const FAMILIES: { family: Family; save: string; restore: string }[] = [
  { family: "IPv4", save: "iptables-save", restore: "iptables-restore" },
  { family: "IPv6", save: "ip6tables-save", restore: "ip6tables-restore" },
];

export async function initCommand(args: string[]): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args,
      options: {
        "proxy-uid": { type: "string", default: "1337" },
        "inbound-port": { type: "string", default: "15006" },
        "outbound-port": { type: "string", default: "15001" },
        "include-inbound-ports": { type: "string" },
        "include-outbound-ports": { type: "string", default: DEFAULT_OUTBOUND_PORTS.join(",") },
        "exclude-outbound-ports": { type: "string", default: "" },
        "dry-run": { type: "boolean", default: false },
        cleanup: { type: "boolean", default: false },
        help: { type: "boolean", short: "h" },
      },
    }));
  } catch (e) {
    return usageError([(e as Error).message]);
  }
  if (values.help) {
    process.stdout.write(USAGE);
    return 0;
  }

  if (values.cleanup) {
    if (values["dry-run"]) return usageError(["--cleanup and --dry-run do not go together: --dry-run prints the rules that would be installed"]);
    return apply("removed weft's rules and chains", cleanupInput);
  }

  const problems: string[] = [];
  type Flag = "proxy-uid" | "inbound-port" | "outbound-port" | "include-inbound-ports" | "include-outbound-ports" | "exclude-outbound-ports";
  const flag = <T>(name: Flag, parse: (text: string) => T | Problem): T => {
    const parsed = parse(values[name] ?? "");
    if (isProblem(parsed)) problems.push(`--${name}: ${parsed.problem}`);
    return parsed as T;
  };
  if (values["include-inbound-ports"] === undefined) {
    problems.push('--include-inbound-ports is required: the app\'s ports, like --include-inbound-ports 8080 ("" redirects no inbound traffic)');
  }
  const options: InitOptions = {
    proxyUid: flag("proxy-uid", (t) => (/^\d+$/.test(t) && Number(t) < 2 ** 32 - 1 ? Number(t) : { problem: `"${t}" is not a user ID (a number, like 1337)` })),
    inboundPort: flag("inbound-port", port),
    outboundPort: flag("outbound-port", port),
    inboundPorts: flag("include-inbound-ports", portList),
    outboundPorts: flag("include-outbound-ports", (t) => (t.trim() === "*" ? "*" : portList(t))),
    excludeOutboundPorts: flag("exclude-outbound-ports", portList),
  };
  if (problems.length > 0) return usageError(problems);
  const conflicts = optionProblems(options);
  if (conflicts.length > 0) return usageError(conflicts);

  if (values["dry-run"]) {
    for (const { family, restore } of FAMILIES) {
      process.stdout.write(`# ${family}: the input of ${restore} --noflush on a pod without weft's rules\n${installInput(options, family, "")}`);
    }
    return 0;
  }
  return apply(summary(options), (current, family) => installInput(options, family, current));
}

/** Runs `input` through iptables-restore --noflush for each family the kernel has, after reading the nat table it changes. */
async function apply(done: string, input: (current: string, family: Family) => string): Promise<number> {
  for (const { family, save, restore } of FAMILIES) {
    // A kernel booted without IPv6 has no IPv6 nat table, and no IPv6 traffic to redirect.
    if (family === "IPv6" && !existsSync("/proc/net/if_inet6")) {
      process.stdout.write("weft init: IPv6 is off in this kernel: no IPv6 rules\n");
      continue;
    }
    const saved = await run(save, ["-t", "nat"]);
    if (saved.failure) return fail(saved.failure);
    const text = input(saved.stdout, family);
    // No -w: with iptables-legacy it takes a lock file under /run, which the injected container's
    // read-only root filesystem does not allow; nothing else changes a new pod's rules meanwhile.
    const restored = await run(restore, ["--noflush"], text);
    if (restored.failure) return fail(`${restored.failure}\nthe input was:\n${text}`);
    process.stdout.write(`weft init: ${family}: ${restore} --noflush <<EOF\n${text}EOF\n`);
  }
  process.stdout.write(`weft init: ${done}\n`);
  return 0;
}

function summary(o: InitOptions): string {
  const list = (ports: number[]) => (ports.length > 0 ? [...ports].sort((a, b) => a - b).join(",") : "none");
  const excluded = new Set(o.excludeOutboundPorts);
  const outbound =
    o.outboundPorts === "*"
      ? `every port${excluded.size > 0 ? ` but ${list([...excluded])}` : ""}`
      : `ports ${list(o.outboundPorts.filter((p) => !excluded.has(p)))}`;
  return (
    `inbound TCP to ports ${list(o.inboundPorts)} goes to ${o.inboundPort}; outbound TCP to ${outbound} goes to ${o.outboundPort}, ` +
    `except from UID ${o.proxyUid} and over loopback`
  );
}

interface Problem {
  problem: string;
}
const isProblem = (x: unknown): x is Problem => typeof x === "object" && x !== null && "problem" in x;

function port(text: string): number | Problem {
  const n = Number(text.trim());
  return /^\s*\d+\s*$/.test(text) && n >= 1 && n <= 65535 ? n : { problem: `"${text}" is not a port (1-65535)` };
}

function portList(text: string): number[] | Problem {
  const ports: number[] = [];
  for (const item of text.split(",").filter((x) => x.trim() !== "")) {
    const p = port(item);
    if (isProblem(p)) return { problem: `${p.problem}: give comma-separated ports, like 80,8080` };
    ports.push(p);
  }
  return ports;
}

function usageError(problems: string[]): number {
  process.stderr.write(`${problems.map((p) => `weft init: ${p}\n`).join("")}\n${USAGE}`);
  return 2;
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
      const fix = e.code === "ENOENT" ? ": install iptables (Debian: apt-get install iptables) and put it on PATH; the image that runs weft-init needs it too" : "";
      resolve({ stdout, failure: `cannot run ${command}: ${e.message}${fix}` });
    });
    child.on("close", (code) => {
      if (code === 0) resolve({ stdout });
      else {
        const hint = /permission denied|not permitted/i.test(stderr) ? " (weft init needs root with NET_ADMIN and NET_RAW in the pod's network namespace)" : "";
        resolve({ stdout, failure: `${command} ${args.join(" ")} failed with exit code ${code}${hint}: ${stderr.trim()}` });
      }
    });
    child.stdin.on("error", () => {}); // a command that dies early closes its stdin: its exit says why
    child.stdin.end(input ?? "");
  });
}
