// What is benchmarked: the upstream, the baselines (nginx, HAProxy) and weft on each runtime,
// plain and with one mTLS hop, the operating point (the mTLS hop with telemetry on), and the
// certificates and configuration files they need.
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { quantityValue } from "../../control/inject/quantity.ts";
import { runtimeEnv } from "../../control/inject/runtime-env.ts";
import { DEFAULT_SETTINGS } from "../../control/inject/settings.ts";
import { httpGet, startPinned, stop, waitUntil } from "./proc.ts";
import type { Managed } from "./proc.ts";
import type { WeftBuild } from "./revision.ts";

export const BODY = "weft-bench:".padEnd(99, "x") + "\n"; // exactly 100 bytes
export const TRUST_DOMAIN = "cluster.local";
export const spiffe = (sa: string) => `spiffe://${TRUST_DOMAIN}/ns/bench/sa/${sa}`;

export const PORTS = {
  upstream: 18080,
  nginx: 18081,
  haproxy: 18082,
  nginxA: 18091,
  nginxB: 18092,
  haproxyA: 18093,
  haproxyB: 18094,
  weftAdminA: 15000,
  weftOutbound: 15001,
  weftInbound: 15006,
  weftAdminB: 15100,
} as const;

export type Runtime = "node" | "deno" | "bun";

export interface Bins {
  nginx: string;
  haproxy: string;
  wrk: string;
  vegeta: string;
  openssl: string;
  node: string;
  deno: string;
  bun: string;
}

export interface Ctx {
  dir: string;
  repo: string;
  proxyCpu: string;
  loadCpu: string;
  bins: Bins;
  certs: Certs;
  /** Marketplace filters built for the filter scenarios on first use, per weft tree (its own SDK and plugins). */
  filters?: Map<string, Promise<Map<string, { path: string; sha256: string }>>>;
  /** The operating point's request body (bench/lib/operating-point.ts): vegeta's file, and the readiness POST's bytes. */
  opBody?: { path: string; body: Buffer };
}

export interface Running {
  /** The URL the load generators hit. */
  url: string;
  /** Processes whose CPU and memory are reported (the proxies, not the upstream). */
  measured: Managed[];
  /** Where each process was pinned, for the report. */
  pinning: Record<string, string>;
}

export type Group = "plain" | "mtls" | "op";

export interface Scenario {
  /** With --compare, the revision's weft scenarios have BEFORE after their id (see baseId). */
  id: string;
  label: string;
  /** "op": the operating point, the mTLS hop with telemetry on at a fixed rate (operating-point.ts). */
  group: Group;
  kind: "direct" | "nginx" | "haproxy" | "weft";
  runtime?: Runtime;
  /** Number of proxies a request passes through. */
  sidecars: number;
  /** WebAssembly filters on the proxy's listener (weft only). */
  filters?: number;
  /** The weft it runs, in a comparison (--compare); absent otherwise. */
  build?: WeftBuild;
  start(ctx: Ctx): Promise<Running>;
}

/** The suffix of the --compare revision's scenario ids: `weft-node@before`. */
export const BEFORE = "@before";

/** The id --only and --skip name, the same for both builds of a comparison. */
export const baseId = (id: string) => (id.endsWith(BEFORE) ? id.slice(0, -BEFORE.length) : id);

// ---------------------------------------------------------------------------------------------
// Certificates: one CA, ECDSA P-256 leaves with SPIFFE URI SANs (plus a DNS SAN so that nginx,
// which can only verify host names, can check the server side too). Keys are PKCS#8.

export interface Certs {
  caCert: string;
  client: { cert: string; key: string; pem: string };
  server: { cert: string; key: string; pem: string };
}

export function makeCerts(dir: string, openssl: string): Certs {
  const d = join(dir, "certs");
  mkdirSync(d, { recursive: true });
  const o = (args: string[]) => execFileSync(openssl, args, { cwd: d, stdio: ["ignore", "pipe", "pipe"] });
  o(["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", "ca.key"]);
  o([
    "req",
    "-x509",
    "-new",
    "-key",
    "ca.key",
    "-days",
    "7",
    "-subj",
    "/O=weft-bench/CN=weft bench CA",
    "-addext",
    "basicConstraints=critical,CA:TRUE",
    "-addext",
    "keyUsage=critical,keyCertSign,cRLSign",
    "-out",
    "ca.crt",
  ]);
  const leaf = (name: string) => {
    o(["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", `${name}.key`]);
    o(["req", "-new", "-key", `${name}.key`, "-subj", `/O=weft-bench/CN=${name}`, "-out", `${name}.csr`]);
    writeFileSync(
      join(d, `${name}.ext`),
      [
        "basicConstraints=critical,CA:FALSE",
        "keyUsage=critical,digitalSignature,keyEncipherment",
        "extendedKeyUsage=serverAuth,clientAuth",
        `subjectAltName=URI:${spiffe(name)},DNS:${name}.bench.svc.cluster.local`,
        "",
      ].join("\n"),
    );
    o([
      "x509",
      "-req",
      "-in",
      `${name}.csr`,
      "-CA",
      "ca.crt",
      "-CAkey",
      "ca.key",
      "-set_serial",
      String(Date.now() + name.length),
      "-days",
      "7",
      "-extfile",
      `${name}.ext`,
      "-out",
      `${name}.crt`,
    ]);
    const pem = join(d, `${name}.pem`);
    writeFileSync(pem, readFileSync(join(d, `${name}.crt`), "utf8") + readFileSync(join(d, `${name}.key`), "utf8"));
    return { cert: join(d, `${name}.crt`), key: join(d, `${name}.key`), pem };
  };
  return { caCert: join(d, "ca.crt"), client: leaf("client"), server: leaf("server") };
}

// ---------------------------------------------------------------------------------------------
// nginx

function nginxConf(dir: string, name: string, http: string): string {
  const tmp = join(dir, `${name}-tmp`);
  mkdirSync(tmp, { recursive: true });
  const path = join(dir, `${name}.nginx.conf`);
  writeFileSync(
    path,
    `# generated by bench/run.ts
worker_processes 1;
daemon off;
master_process on;
pid ${join(dir, `${name}.pid`)};
error_log ${join(dir, `${name}.error.log`)} warn;
events { worker_connections 8192; }
http {
  access_log off;
  client_body_temp_path ${tmp}/body;
  proxy_temp_path ${tmp}/proxy;
  fastcgi_temp_path ${tmp}/fastcgi;
  uwsgi_temp_path ${tmp}/uwsgi;
  scgi_temp_path ${tmp}/scgi;
  keepalive_requests 100000000;
  keepalive_timeout 300s;
${http}
}
`,
  );
  return path;
}

/**
 * The access log of the operating point: buffered and flushed every 100 ms, as weft writes its own
 * (docs/benchmarks.md says why). Inside a `server` block it overrides the `access_log off` above.
 */
const nginxAccessLog = (ctx: Ctx, name: string) => `
    access_log ${join(ctx.dir, `${name}.access.log`)} combined buffer=64k flush=100ms;`;

function startNginx(ctx: Ctx, role: string, name: string, cpus: string, http: string): Managed {
  const conf = nginxConf(ctx.dir, name, http);
  return startPinned(role, cpus, [ctx.bins.nginx, "-p", ctx.dir, "-e", join(ctx.dir, `${name}.error.log`), "-c", conf]);
}

const nginxUpstreamBlock = (name: string, port: number) => `
  upstream ${name} {
    server 127.0.0.1:${port};
    keepalive 64;
    keepalive_requests 100000000;
    keepalive_timeout 300s;
  }`;

const nginxProxyHttp = `
      proxy_http_version 1.1;
      proxy_set_header Connection "";`;

export function startUpstream(ctx: Ctx): Managed {
  return startNginx(
    ctx,
    "upstream (nginx return 200)",
    "upstream",
    ctx.loadCpu,
    `
  server {
    listen 127.0.0.1:${PORTS.upstream} backlog=4096;
    location / {
      default_type text/plain;
      return 200 "${BODY.replace("\n", "\\n")}";
    }
  }`,
  );
}

/** The upstream's exact body through `url`: for a GET, or for a POST of `body` (the operating point's). */
export async function checkBody(url: string, body?: Buffer): Promise<void> {
  const what = body === undefined ? `GET ${url}` : `POST ${url} (${body.length}-byte body)`;
  const r = await httpGet(url, 2000, body);
  if (r.status !== 200) throw new Error(`${what}: HTTP ${r.status} ${r.body.slice(0, 200)}`);
  if (r.body !== BODY) throw new Error(`${what}: unexpected body (${r.body.length} bytes) ${r.body.slice(0, 120)}`);
}

// ---------------------------------------------------------------------------------------------
// HAProxy

// With `accessLog`, one line per request on stdout (HAProxy's way in a container, `log stdout`),
// which goes to a file.
function startHaproxy(ctx: Ctx, role: string, name: string, cpus: string, body: string, accessLog = false): Managed {
  const path = join(ctx.dir, `${name}.haproxy.cfg`);
  writeFileSync(
    path,
    `# generated by bench/run.ts
global
  nbthread 1
  maxconn 4000
  tune.ssl.cachesize 20000${accessLog ? "\n  log stdout format raw local0" : ""}
defaults
  mode http
  timeout connect 5s
  timeout client 300s
  timeout server 300s
  timeout http-keep-alive 300s
  option http-keep-alive
  http-reuse always${accessLog ? "\n  log global\n  option httplog" : ""}
${body}
`,
  );
  return startPinned(role, cpus, [ctx.bins.haproxy, "-db", "-f", path], {
    ...(accessLog ? { stdoutFile: join(ctx.dir, `${name}.access.log`) } : {}),
  });
}

// ---------------------------------------------------------------------------------------------
// weft

// The bundle `npm run build` makes in `repo` (bench/run.ts builds it first): what a sidecar image runs.
export function weftCommand(ctx: Ctx, repo: string, runtime: Runtime, config: string): string[] {
  const entry = join(repo, "dist", "weft.mjs");
  switch (runtime) {
    case "node":
      return [ctx.bins.node, entry, "proxy", "--config", config];
    case "deno":
      return [ctx.bins.deno, "run", "-A", entry, "proxy", "--config", config];
    case "bun":
      return [ctx.bins.bun, entry, "proxy", "--config", config];
  }
}

// The access log is off except at the operating point, where it is "stdout", what an injected
// sidecar has (the control plane leaves the field at its default).
function weftBase(workload: string, adminPort: number, accessLog: "stdout" | "off" = "off") {
  return {
    version: "bench-1",
    node: { id: `bench-${workload}`, workload, namespace: "bench", serviceAccount: workload, trustDomain: TRUST_DOMAIN },
    admin: { address: "127.0.0.1", port: adminPort },
    accessLog,
  };
}

const upstreamCluster = {
  name: "upstream",
  service: "upstream.bench.svc.cluster.local",
  namespace: "bench",
  workload: "upstream",
  endpoints: [{ address: "127.0.0.1", port: PORTS.upstream }],
};

const catchAll = (cluster: string) => [{ name: cluster, domains: ["*"], routes: [{ backends: [{ cluster }] }] }];

function identity(certs: Certs, who: "client" | "server") {
  return {
    certificateChain: readFileSync(certs[who].cert, "utf8"),
    privateKey: readFileSync(certs[who].key, "utf8"),
    trustBundle: readFileSync(certs.caCert, "utf8"),
  };
}

export function weftPlainConfig(): unknown {
  return {
    ...weftBase("bench-client", PORTS.weftAdminA),
    listeners: [
      {
        name: "outbound",
        direction: "Outbound",
        address: "127.0.0.1",
        port: PORTS.weftOutbound,
        virtualHosts: catchAll("upstream"),
      },
    ],
    clusters: [upstreamCluster],
  };
}

export function weftMtlsConfigs(certs: Certs, accessLog: "stdout" | "off" = "off"): { a: unknown; b: unknown } {
  const a = {
    ...weftBase("client", PORTS.weftAdminA, accessLog),
    identity: identity(certs, "client"),
    listeners: [
      {
        name: "outbound",
        direction: "Outbound",
        address: "127.0.0.1",
        port: PORTS.weftOutbound,
        virtualHosts: catchAll("server"),
      },
    ],
    clusters: [
      {
        name: "server",
        service: "server.bench.svc.cluster.local",
        namespace: "bench",
        workload: "server",
        endpoints: [{ address: "127.0.0.1", port: PORTS.weftInbound }],
        tls: { identities: [spiffe("server")] },
      },
    ],
  };
  const b = {
    ...weftBase("server", PORTS.weftAdminB, accessLog),
    identity: identity(certs, "server"),
    listeners: [
      {
        name: "inbound",
        direction: "Inbound",
        address: "127.0.0.1",
        port: PORTS.weftInbound,
        tls: "STRICT",
        virtualHosts: catchAll("upstream"),
      },
    ],
    clusters: [upstreamCluster],
  };
  return { a, b };
}

// Filters on the plain outbound listener: one (header-rewrite), then a chain of three that a
// service would run on every request and that needs no credentials from the load generator
// (jwt-auth's per-call cost is in bench/micro/filters.ts). Configured so that every request
// passes: the figures are the cost of running the filters, not of refusing.
const BENCH_FILTERS: { name: string; phase?: string; config: unknown }[] = [
  { name: "ip-filter", phase: "Authz", config: { allow: ["127.0.0.0/8"] } },
  { name: "rate-limit", phase: "Authz", config: { requestsPerSecond: 1e9, burst: 1_000_000_000, keyBy: "clientIp" } },
  {
    name: "header-rewrite",
    config: {
      request: { set: [{ name: "x-route", value: "{{request.method}} {{request.path}}" }], remove: ["x-debug"] },
      response: { add: [{ name: "x-served-by", value: "weft" }] },
    },
  },
];
export const FILTER_COUNTS = [1, 3] as const;

// Each weft tree builds the filters with its own SDK from its own plugins/, so that a compared
// revision runs modules made for its own filter ABI.
async function buildBenchFilters(ctx: Ctx, repo: string, tag: string): Promise<Map<string, { path: string; sha256: string }>> {
  const sdk = pathToFileURL(join(repo, "sdk", "build", "build.ts")).href;
  const { buildFilter } = (await import(sdk)) as typeof import("../../sdk/build/build.ts");
  const built = new Map<string, { path: string; sha256: string }>();
  for (const f of BENCH_FILTERS) {
    const { wasm, sha256 } = await buildFilter(join(repo, "plugins", f.name));
    const path = join(ctx.dir, `${f.name}${tag}.wasm`);
    writeFileSync(path, wasm);
    built.set(f.name, { path, sha256 });
  }
  return built;
}

export async function weftFilterConfig(ctx: Ctx, repo: string, count: number): Promise<unknown> {
  ctx.filters ??= new Map();
  let building = ctx.filters.get(repo);
  if (!building) {
    building = buildBenchFilters(ctx, repo, `-${ctx.filters.size}`);
    ctx.filters.set(repo, building);
  }
  const built = await building;
  const chosen = count === 1 ? BENCH_FILTERS.filter((f) => f.name === "header-rewrite") : BENCH_FILTERS.slice(0, count);
  return {
    ...(weftPlainConfig() as object),
    filters: chosen.map((f) => ({
      name: f.name,
      namespace: "bench",
      module: built.get(f.name)!,
      ...(f.phase ? { phase: f.phase } : {}),
      config: f.config,
      failStrategy: "FailClose",
    })),
  };
}

// With `accessLog`, the configuration has it on stdout, which goes to a file.
async function startWeft(
  ctx: Ctx,
  repo: string,
  runtime: Runtime,
  role: string,
  name: string,
  config: unknown,
  adminPort: number,
  accessLog = false,
) {
  const path = join(ctx.dir, `${name}.weft.json`);
  writeFileSync(path, JSON.stringify(config, null, 2));
  // The heap settings an injected sidecar gets for the default memory limit: without them a
  // runtime on a machine without a limit grows its heap far past what any pod holds.
  const memoryLimit = quantityValue(DEFAULT_SETTINGS.resources.limits.memory);
  const m = startPinned(role, ctx.proxyCpu, weftCommand(ctx, repo, runtime, path), {
    cwd: repo,
    env: { ...process.env, NODE_ENV: "production", ...runtimeEnv(runtime, memoryLimit) },
    ...(accessLog ? { stdoutFile: join(ctx.dir, `${name}.access.log`) } : {}),
  });
  return { m, ready: `http://127.0.0.1:${adminPort}/ready` };
}

async function waitReady(url: string): Promise<void> {
  const r = await httpGet(url);
  if (r.status !== 200) throw new Error(`GET ${url}: HTTP ${r.status}`);
}

// ---------------------------------------------------------------------------------------------
// The scenarios

const READY_MS = 30_000;

async function started(
  procs: Managed[],
  url: string,
  pinning: Record<string, string>,
  readyUrls: string[] = [],
  body?: Buffer,
): Promise<Running> {
  try {
    for (const r of readyUrls) await waitUntil(`${r} to return 200`, () => waitReady(r), procs, READY_MS);
    await waitUntil(`GET ${url} to return the upstream's 100-byte body`, () => checkBody(url), procs, READY_MS);
    // The operating point POSTs a body: check that one passes too.
    if (body !== undefined) await waitUntil(`a POST to ${url} to return the upstream's body`, () => checkBody(url, body), procs, READY_MS);
  } catch (err) {
    await Promise.all(procs.map((p) => stop(p)));
    throw err;
  }
  return { url, measured: procs, pinning };
}

const RUNTIME_NAMES = { node: "Node", deno: "Deno", bun: "Bun" } as const;

function checkEntry(repo: string): void {
  const entry = join(repo, "dist", "weft.mjs");
  if (!existsSync(entry)) throw new Error(`${entry} does not exist: run \`npm run build\``);
}

/** weft on `runtime`, from `build`'s tree (this one outside a comparison): plain, with filters. */
function weftPlainScenarios(runtime: Runtime, build?: WeftBuild): Scenario[] {
  const name = RUNTIME_NAMES[runtime];
  const suffix = build?.role === "before" ? BEFORE : "";
  const repo = (ctx: Ctx) => build?.repo ?? ctx.repo;
  return [
    {
      id: `weft-${runtime}${suffix}`,
      label: `weft on ${name}`,
      group: "plain",
      kind: "weft",
      runtime,
      sidecars: 1,
      ...(build ? { build } : {}),
      async start(ctx) {
        checkEntry(repo(ctx));
        const { m, ready } = await startWeft(
          ctx,
          repo(ctx),
          runtime,
          `weft (${runtime})`,
          `weft-${runtime}${suffix}`,
          weftPlainConfig(),
          PORTS.weftAdminA,
        );
        return started([m], `http://127.0.0.1:${PORTS.weftOutbound}/`, { [m.role]: `cpu ${ctx.proxyCpu}` }, [ready]);
      },
    },
    ...FILTER_COUNTS.map(
      (count): Scenario => ({
        id: `weft-${runtime}-filters${count}${suffix}`,
        label: `weft on ${name}, ${count} filter${count > 1 ? "s" : ""}`,
        group: "plain",
        kind: "weft",
        runtime,
        sidecars: 1,
        filters: count,
        ...(build ? { build } : {}),
        async start(ctx) {
          checkEntry(repo(ctx));
          const config = await weftFilterConfig(ctx, repo(ctx), count);
          const { m, ready } = await startWeft(
            ctx,
            repo(ctx),
            runtime,
            `weft (${runtime}, ${count} filters)`,
            `weft-${runtime}-filters${count}${suffix}`,
            config,
            PORTS.weftAdminA,
          );
          return started([m], `http://127.0.0.1:${PORTS.weftOutbound}/`, { [m.role]: `cpu ${ctx.proxyCpu}` }, [ready]);
        },
      }),
    ),
  ];
}

/**
 * weft's mTLS hop on `runtime`; with `telemetry`, the operating point's variant: the access log on
 * stdout (to a file) on both sidecars, and the readiness check POSTs the operating point's body.
 */
function weftMtlsScenario(runtime: Runtime, telemetry: boolean, build?: WeftBuild): Scenario {
  const name = RUNTIME_NAMES[runtime];
  const suffix = build?.role === "before" ? BEFORE : "";
  const id = `${telemetry ? "op-" : ""}weft-${runtime}${telemetry ? "" : "-mtls"}${suffix}`;
  return {
    id,
    label: `weft on ${name}, mTLS hop${telemetry ? ", telemetry on" : ""}`,
    group: telemetry ? "op" : "mtls",
    kind: "weft",
    runtime,
    sidecars: 2,
    ...(build ? { build } : {}),
    async start(ctx) {
      const repo = build?.repo ?? ctx.repo;
      checkEntry(repo);
      const cfg = weftMtlsConfigs(ctx.certs, telemetry ? "stdout" : "off");
      const b = await startWeft(
        ctx,
        repo,
        runtime,
        `sidecar B (${runtime}, inbound STRICT)`,
        `${id}-b`,
        cfg.b,
        PORTS.weftAdminB,
        telemetry,
      );
      const a = await startWeft(ctx, repo, runtime, `sidecar A (${runtime}, outbound mTLS)`, `${id}-a`, cfg.a, PORTS.weftAdminA, telemetry);
      return started(
        [a.m, b.m],
        `http://127.0.0.1:${PORTS.weftOutbound}/`,
        { [a.m.role]: `cpu ${ctx.proxyCpu}`, [b.m.role]: `cpu ${ctx.proxyCpu}` },
        [b.ready, a.ready],
        telemetry ? ctx.opBody?.body : undefined,
      );
    },
  };
}

function directScenario(telemetry: boolean): Scenario {
  return {
    id: telemetry ? "op-direct" : "direct",
    label: "direct to upstream",
    group: telemetry ? "op" : "plain",
    kind: "direct",
    sidecars: 0,
    async start(ctx) {
      const url = `http://127.0.0.1:${PORTS.upstream}/`;
      if (telemetry && ctx.opBody) await checkBody(url, ctx.opBody.body);
      return { url, measured: [], pinning: {} };
    },
  };
}

function nginxMtlsScenario(telemetry: boolean): Scenario {
  const id = telemetry ? "op-nginx" : "nginx-mtls";
  return {
    id,
    label: `nginx, mTLS hop${telemetry ? ", access log on" : ""}`,
    group: telemetry ? "op" : "mtls",
    kind: "nginx",
    sidecars: 2,
    async start(ctx) {
      const c = ctx.certs;
      const b = startNginx(
        ctx,
        "nginx B (mTLS in)",
        `${id}-b`,
        ctx.proxyCpu,
        `${nginxUpstreamBlock("up", PORTS.upstream)}
  server {
    listen 127.0.0.1:${PORTS.nginxB} ssl backlog=4096;${telemetry ? nginxAccessLog(ctx, `${id}-b`) : ""}
    ssl_certificate ${c.server.cert};
    ssl_certificate_key ${c.server.key};
    ssl_client_certificate ${c.caCert};
    ssl_verify_client on;
    ssl_protocols TLSv1.3;
    location / {
      proxy_pass http://up;${nginxProxyHttp}
    }
  }`,
      );
      const a = startNginx(
        ctx,
        "nginx A (mTLS out)",
        `${id}-a`,
        ctx.proxyCpu,
        `${nginxUpstreamBlock("b", PORTS.nginxB)}
  server {
    listen 127.0.0.1:${PORTS.nginxA} backlog=4096;${telemetry ? nginxAccessLog(ctx, `${id}-a`) : ""}
    location / {
      proxy_pass https://b;${nginxProxyHttp}
      proxy_ssl_certificate ${c.client.cert};
      proxy_ssl_certificate_key ${c.client.key};
      proxy_ssl_trusted_certificate ${c.caCert};
      proxy_ssl_verify on;
      proxy_ssl_name server.bench.svc.cluster.local;
      proxy_ssl_protocols TLSv1.3;
      proxy_ssl_session_reuse on;
    }
  }`,
      );
      return started(
        [a, b],
        `http://127.0.0.1:${PORTS.nginxA}/`,
        { [a.role]: `cpu ${ctx.proxyCpu}`, [b.role]: `cpu ${ctx.proxyCpu}` },
        [],
        telemetry ? ctx.opBody?.body : undefined,
      );
    },
  };
}

function haproxyMtlsScenario(telemetry: boolean): Scenario {
  const id = telemetry ? "op-haproxy" : "haproxy-mtls";
  return {
    id,
    label: `HAProxy, mTLS hop${telemetry ? ", access log on" : ""}`,
    group: telemetry ? "op" : "mtls",
    kind: "haproxy",
    sidecars: 2,
    async start(ctx) {
      const c = ctx.certs;
      const b = startHaproxy(
        ctx,
        "haproxy B (mTLS in)",
        `${id}-b`,
        ctx.proxyCpu,
        `frontend fe
  bind 127.0.0.1:${PORTS.haproxyB} ssl crt ${c.server.pem} ca-file ${c.caCert} verify required ssl-min-ver TLSv1.3
  default_backend be
backend be
  server up 127.0.0.1:${PORTS.upstream}`,
        telemetry,
      );
      const a = startHaproxy(
        ctx,
        "haproxy A (mTLS out)",
        `${id}-a`,
        ctx.proxyCpu,
        `frontend fe
  bind 127.0.0.1:${PORTS.haproxyA}
  default_backend be
backend be
  server b 127.0.0.1:${PORTS.haproxyB} ssl crt ${c.client.pem} ca-file ${c.caCert} verify required verifyhost server.bench.svc.cluster.local ssl-min-ver TLSv1.3`,
        telemetry,
      );
      return started(
        [a, b],
        `http://127.0.0.1:${PORTS.haproxyA}/`,
        { [a.role]: `cpu ${ctx.proxyCpu} (1 thread)`, [b.role]: `cpu ${ctx.proxyCpu} (1 thread)` },
        [],
        telemetry ? ctx.opBody?.body : undefined,
      );
    },
  };
}

/**
 * Every scenario, plain first, then the mTLS hops, then the operating point. With `compare`, each
 * weft scenario comes twice, this tree's and then the revision's (`…@before`), next to each
 * other so that a round visits the two builds back to back.
 */
export function allScenarios(compare?: { before: WeftBuild; after: WeftBuild }): Scenario[] {
  const weft = (make: (build?: WeftBuild) => Scenario[]): Scenario[] => {
    if (!compare) return make();
    const after = make(compare.after);
    const before = make(compare.before);
    return after.flatMap((s, i) => [s, before[i] as Scenario]);
  };
  const runtimes: Runtime[] = ["node", "deno", "bun"];
  return [
    directScenario(false),
    {
      id: "nginx",
      label: "nginx",
      group: "plain",
      kind: "nginx",
      sidecars: 1,
      async start(ctx) {
        const m = startNginx(
          ctx,
          "nginx",
          "nginx",
          ctx.proxyCpu,
          `${nginxUpstreamBlock("up", PORTS.upstream)}
  server {
    listen 127.0.0.1:${PORTS.nginx} backlog=4096;
    location / {
      proxy_pass http://up;${nginxProxyHttp}
    }
  }`,
        );
        return started([m], `http://127.0.0.1:${PORTS.nginx}/`, { nginx: `cpu ${ctx.proxyCpu} (master + 1 worker)` });
      },
    },
    {
      id: "haproxy",
      label: "HAProxy",
      group: "plain",
      kind: "haproxy",
      sidecars: 1,
      async start(ctx) {
        const m = startHaproxy(
          ctx,
          "haproxy",
          "haproxy",
          ctx.proxyCpu,
          `frontend fe
  bind 127.0.0.1:${PORTS.haproxy}
  default_backend be
backend be
  server up 127.0.0.1:${PORTS.upstream}`,
        );
        return started([m], `http://127.0.0.1:${PORTS.haproxy}/`, { haproxy: `cpu ${ctx.proxyCpu} (1 thread)` });
      },
    },
    ...runtimes.flatMap((rt) => weft((b) => weftPlainScenarios(rt, b))),
    ...runtimes.flatMap((rt) => weft((b) => [weftMtlsScenario(rt, false, b)])),
    nginxMtlsScenario(false),
    haproxyMtlsScenario(false),
    directScenario(true),
    nginxMtlsScenario(true),
    haproxyMtlsScenario(true),
    ...runtimes.flatMap((rt) => weft((b) => [weftMtlsScenario(rt, true, b)])),
  ];
}
