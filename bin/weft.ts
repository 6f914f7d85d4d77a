#!/usr/bin/env node
// The weft command line.
import process from "node:process";
import { parseArgs } from "node:util";

const USAGE = `usage: weft <command> [options]

commands:
  proxy --config FILE   run a sidecar from a proxy configuration file (docs/proxy-config.md)
  proxy --control-plane URL --namespace NS --pod NAME [--token-file F] [--ca-file F]
        [--admin-port P] [--outbound-port P] [--inbound-port P]
                        run a sidecar configured by the control plane (docs/control-plane.md)
  filter <command>      write, build, test and find WebAssembly filters ("weft filter help")
  inject -f FILE|-      add the sidecar to the pods and workloads in Kubernetes YAML (docs/injection.md)
  init --include-inbound-ports PORTS [--include-outbound-ports PORTS|*] [--exclude-outbound-ports PORTS]
       [--proxy-uid UID] [--inbound-port P] [--outbound-port P] [--dry-run] [--cleanup]
                        redirect the pod's traffic through the sidecar with iptables (docs/injection.md)
  install               print the manifests that install weft: weft install | kubectl apply -f -
  control               run the control plane (docs/control-plane.md); --local DIR without Kubernetes
  up [DIR]              run a whole mesh on this machine, the shop demo without DIR (docs/local-mode.md)
  status                every sidecar's configuration version and filters, and every WasmFilter's status
  dashboard             open the cluster's dashboard through kubectl port-forward (docs/dashboard.md)

Run with Node.js >= 22.18 (node bin/weft.ts), Deno >= 2 (deno run -A bin/weft.ts) or Bun >= 1.2 (bun bin/weft.ts).
`;

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case "proxy": {
      const { values } = parseArgs({
        args: rest,
        options: {
          config: { type: "string", short: "c" },
          "control-plane": { type: "string" },
          namespace: { type: "string" },
          pod: { type: "string" },
          "token-file": { type: "string" },
          "ca-file": { type: "string" },
          "admin-address": { type: "string" },
          "admin-port": { type: "string" },
          "outbound-port": { type: "string" },
          "inbound-port": { type: "string" },
        },
      });
      const env = process.env;
      const controlPlane = values["control-plane"] ?? env.WEFT_CONTROL_PLANE;
      if (values.config) {
        const { runProxy } = await import("../proxy/main.ts");
        await runProxy(values.config);
        return -1; // keeps running until a signal
      }
      if (!controlPlane) {
        process.stderr.write("weft proxy: give --config FILE (a JSON proxy configuration, docs/proxy-config.md) or --control-plane URL (docs/control-plane.md)\n");
        return 2;
      }
      const namespace = values.namespace ?? env.POD_NAMESPACE;
      const pod = values.pod ?? env.POD_NAME;
      if (!namespace || !pod) {
        process.stderr.write("weft proxy: with --control-plane, give --namespace and --pod (or POD_NAMESPACE and POD_NAME, as the injected sidecar has)\n");
        return 2;
      }
      const adminPort = Number(values["admin-port"] ?? env.WEFT_ADMIN_PORT ?? 15000);
      if (!Number.isInteger(adminPort) || adminPort < 0 || adminPort > 65535) {
        process.stderr.write(`weft proxy: --admin-port must be a port number, not "${values["admin-port"] ?? env.WEFT_ADMIN_PORT}"\n`);
        return 2;
      }
      const bind: Record<string, { port: number }> = {};
      // Flags, or the environment the injected sidecar has (WEFT_OUTBOUND_PORT, WEFT_INBOUND_PORT).
      for (const [listener, flag, variable] of [["outbound", "outbound-port", "WEFT_OUTBOUND_PORT"], ["inbound", "inbound-port", "WEFT_INBOUND_PORT"]] as const) {
        const given = values[flag] ?? env[variable];
        if (given === undefined) continue;
        const port = Number(given);
        if (!Number.isInteger(port) || port < 0 || port > 65535) {
          process.stderr.write(`weft proxy: --${flag} must be a port number, not "${given}"\n`);
          return 2;
        }
        bind[listener] = { port };
      }
      const caFile = values["ca-file"] ?? env.WEFT_CA_FILE;
      const { APP_PROBES_ENV, parseAppProbes } = await import("../proxy/admin/app-health.ts");
      const appProbes = parseAppProbes(env[APP_PROBES_ENV] ?? "{}");
      if (typeof appProbes === "string") {
        process.stderr.write(`weft proxy: ${appProbes}\n`);
        return 2;
      }
      const { runManagedProxy } = await import("../proxy/control/managed.ts");
      await runManagedProxy({
        controlPlane,
        namespace,
        pod,
        tokenFile: values["token-file"] ?? env.WEFT_TOKEN_FILE ?? "/var/run/secrets/weft/token",
        ...(env.WEFT_FILTER_CACHE ? { filterCacheDir: env.WEFT_FILTER_CACHE } : {}),
        ...(caFile ? { caFile } : {}),
        adminAddress: values["admin-address"] ?? env.WEFT_ADMIN_ADDRESS ?? "0.0.0.0",
        adminPort,
        bind,
        appProbes,
      });
      return -1;
    }
    case "control": {
      const { controlCommand } = await import("../control/main.ts");
      return controlCommand(rest);
    }
    case "up": {
      const { upCommand } = await import("../control/local/up.ts");
      return upCommand(rest);
    }
    case "status": {
      const { statusCommand } = await import("../control/status/cli.ts");
      return statusCommand(rest);
    }
    case "dashboard": {
      const { dashboardCommand } = await import("../control/dashboard/cli.ts");
      return dashboardCommand(rest);
    }
    case "install": {
      const { installCommand } = await import("../control/install/cli.ts");
      return installCommand(rest);
    }
    case "inject": {
      const { injectCommand } = await import("../control/inject/cli.ts");
      return injectCommand(rest);
    }
    case "init": {
      const { initCommand } = await import("../control/init/cli.ts");
      return initCommand(rest);
    }
    case "filter": {
      const { filterCommand } = await import("../sdk/cli/command.ts");
      return filterCommand(rest);
    }
    case undefined:
    case "help":
    case "--help":
    case "-h":
      process.stdout.write(USAGE);
      return command === undefined ? 2 : 0;
    default:
      process.stderr.write(`weft: unknown command "${command}"\n\n${USAGE}`);
      return 2;
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    // Exit once what was written has reached stdout: Bun drops a pipe's pending writes on exit.
    if (code >= 0) process.stdout.write("", () => process.exit(code));
  },
  (error: Error) => {
    process.stderr.write(`${JSON.stringify({ time: new Date().toISOString(), level: "error", msg: error.message })}\n`);
    process.exit(1);
  },
);
