// A real helm for the chart's test, built from the Go module proxy (helm.sh/helm/v3 installs
// with `go install`) and cached by version in ~/.cache/weft/helm, as test/k8s/build.sh does
// for the Kubernetes binaries. `npm test` builds it first for the suites that need it
// (test/setup.ts); to build it ahead:
//   node_modules/.bin/node test/k8s/helm.ts
import { execFile } from "node:child_process";
import { access, constants, mkdir } from "node:fs/promises";
import { homedir } from "node:os";
import path from "node:path";
import process from "node:process";

export const HELM_VERSION = process.env.WEFT_HELM_VERSION ?? "v3.22.0";

/** The path of a helm binary of HELM_VERSION, built on first use (a few minutes on a cold Go cache). */
export async function helmBinary(): Promise<string> {
  const dir = path.join(process.env.XDG_CACHE_HOME ?? path.join(homedir(), ".cache"), "weft", "helm", HELM_VERSION);
  const helm = path.join(dir, "helm");
  const ok = await access(helm, constants.X_OK).then(
    () => true,
    () => false,
  );
  if (ok) return helm;
  await mkdir(dir, { recursive: true });
  const go = process.env.GO ?? "go";
  await new Promise<void>((resolve, reject) =>
    execFile(
      go,
      ["install", `helm.sh/helm/v3/cmd/helm@${HELM_VERSION}`],
      { env: { ...process.env, GOBIN: dir, GOTOOLCHAIN: "local", CGO_ENABLED: "0" }, maxBuffer: 64 << 20 },
      (e, _stdout, stderr) =>
        e
          ? reject(
              new Error(
                `building helm ${HELM_VERSION} with "go install" failed (the chart test needs Go and the Go module proxy): ${stderr.slice(-2000) || e.message}`,
              ),
            )
          : resolve(),
    ),
  );
  return helm;
}

if (import.meta.main ?? process.argv[1] === new URL(import.meta.url).pathname) {
  process.stdout.write(`${await helmBinary()}\n`);
}
