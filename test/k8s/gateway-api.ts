// The Gateway API CRDs for tests, from the sigs.k8s.io/gateway-api module on the Go module
// proxy (the module ships them in config/crd): downloaded once into Go's module cache.
import { execFile } from "node:child_process";
import path from "node:path";
import process from "node:process";

// v1.7 needs a newer Go than the one the Kubernetes build uses (1.26).
export const GATEWAY_API_VERSION = "v1.6.3";

/** The path of a standard-channel CRD, e.g. "httproutes". */
export async function gatewayApiCrd(plural: string): Promise<string> {
  return path.join(await gatewayApiCrdDir(), `gateway.networking.k8s.io_${plural}.yaml`);
}

/** The directory of every standard-channel CRD (what the conformance suite expects installed). */
export async function gatewayApiCrdDir(): Promise<string> {
  const go = process.env.GO ?? "go";
  const info = await new Promise<string>((resolve, reject) =>
    execFile(
      go,
      ["mod", "download", "-json", `sigs.k8s.io/gateway-api@${GATEWAY_API_VERSION}`],
      { encoding: "utf8", env: { ...process.env, GOTOOLCHAIN: "local", GOFLAGS: "-mod=mod" } },
      (e, stdout, stderr) =>
        e && !stdout
          ? reject(
              new Error(
                `go mod download sigs.k8s.io/gateway-api@${GATEWAY_API_VERSION} failed (the tests need Go and the Go module proxy): ${stderr || e.message}`,
              ),
            )
          : resolve(stdout),
    ),
  );
  const { Dir, Error: error } = JSON.parse(info) as { Dir?: string; Error?: string };
  if (!Dir) throw new Error(`go mod download sigs.k8s.io/gateway-api@${GATEWAY_API_VERSION}: ${error ?? "no Dir in its answer"}`);
  return path.join(Dir, "config", "crd", "standard");
}
