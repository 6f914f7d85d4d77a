// A real Jaeger (the all-in-one binary: OTLP receiver, in-memory storage, query API) for the
// telemetry backends' suite, built from the Go module proxy and cached by version in
// ~/.cache/weft/jaeger, as test/k8s/helm.ts does for helm. `npm test` builds it first for the
// suites whose `// needs:` line says jaeger (test/setup.ts); to build it ahead:
//   node_modules/.bin/node test/support/jaeger-build.ts
//
// `go install github.com/jaegertracing/jaeger/cmd/all-in-one@VERSION` is refused because
// Jaeger's go.mod has a replace line, so a throwaway wrapper module requires Jaeger at VERSION
// and repeats its replace lines (what test/k8s/build.sh does for Kubernetes and etcd). Measured
// on 2 shared cores, compiling on one: 12.5 min cold (9.3 min of it compiling), 26 s with a warm
// Go build cache, 0.1 s once the binary is cached.
import { execFile } from "node:child_process";
import { access, constants, mkdir, mkdtemp, readFile, rename, rm, writeFile } from "node:fs/promises";
import { homedir, tmpdir } from "node:os";
import path from "node:path";
import process from "node:process";

export const JAEGER_VERSION = process.env.WEFT_JAEGER_VERSION ?? "v1.76.0";
const MODULE = "github.com/jaegertracing/jaeger";

const cacheDir = () => path.join(process.env.XDG_CACHE_HOME ?? path.join(homedir(), ".cache"), "weft", "jaeger", JAEGER_VERSION);

function go(args: string[], cwd: string, what: string): Promise<string> {
  const env = {
    ...process.env,
    GOTOOLCHAIN: "local",
    CGO_ENABLED: "0",
    // Gently on a shared machine: one compile at a time (the suite needs it built once).
    GOMAXPROCS: process.env.GOMAXPROCS ?? "1",
    GOFLAGS: "-mod=mod",
  };
  return new Promise((resolve, reject) =>
    execFile(process.env.GO ?? "go", args, { cwd, env, maxBuffer: 64 << 20 }, (e, stdout, stderr) =>
      e
        ? reject(
            new Error(
              `${what} failed (building Jaeger ${JAEGER_VERSION} needs Go >= 1.24 and the Go module proxy): ${stderr.slice(-2000) || e.message}`,
            ),
          )
        : resolve(stdout),
    ),
  );
}

/** The path of Jaeger all-in-one at JAEGER_VERSION, built on first use. */
export async function jaegerBinary(): Promise<string> {
  const dir = cacheDir();
  const binary = path.join(dir, "jaeger-all-in-one");
  const built = await access(binary, constants.X_OK).then(
    () => true,
    () => false,
  );
  if (built) return binary;
  const work = await mkdtemp(path.join(tmpdir(), "weft-jaeger-build-"));
  try {
    // The published go.mod: its go line and replace lines go into the wrapper module.
    const info = JSON.parse(await go(["mod", "download", "-json", `${MODULE}@${JAEGER_VERSION}`], work, "go mod download")) as {
      GoMod: string;
    };
    const published = await readFile(info.GoMod, "utf8");
    const goLine = published.match(/^go \S+$/m)?.[0] ?? "go 1.24";
    const replaces = published.split("\n").filter((l) => /^replace \S+ => \S+ v\S+$/.test(l.trim()));
    await writeFile(
      path.join(work, "go.mod"),
      [`module weft.local/jaeger-build`, "", goLine, "", `require ${MODULE} ${JAEGER_VERSION}`, "", ...replaces, ""].join("\n"),
    );
    const pkg = `${MODULE}/cmd/all-in-one`;
    await go(["get", `${pkg}@${JAEGER_VERSION}`], work, "go get");
    await mkdir(dir, { recursive: true });
    const out = path.join(work, "jaeger-all-in-one");
    await go(["build", "-p", "1", "-trimpath", "-ldflags", "-s -w", "-o", out, pkg], work, "go build");
    await rename(out, binary);
    return binary;
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

if (import.meta.main ?? process.argv[1] === new URL(import.meta.url).pathname) {
  process.stdout.write(`${await jaegerBinary()}\n`);
}
