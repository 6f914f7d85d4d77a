// runtimes: node
// needs: k8s-node conformance
// The Gateway API conformance suite's MESH-HTTP profile (v1.6.3, the upstream Go suite built by
// test/k8s/build-conformance.sh) against weft on the real node, as test/k8s/conformance/run.ts
// runs it (docs/design/conformance.md). Every core test and every claimed extended feature must
// pass, and the report committed in docs/conformance/ must say what this run says: the report
// users read is never older than the code. Node only; needs root.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import process from "node:process";
import { load } from "js-yaml";
import { GATEWAY_API_VERSION } from "../k8s/gateway-api.ts";

const root = path.resolve(import.meta.dirname ?? ".", "..", "..");
const COMMITTED = path.join(root, "docs", "conformance", `weft-${GATEWAY_API_VERSION}-mesh-http.yaml`);

interface ProfileReport {
  name: string;
  summary: string;
  core: { result: string; statistics: Record<string, number> };
  extended?: { result: string; statistics: Record<string, number>; supportedFeatures?: string[]; unsupportedFeatures?: string[] };
}

const profiles = (text: string) => (load(text) as { profiles: ProfileReport[] }).profiles;
/** What a report says, without its date: the part a later run must repeat. */
const outcome = (p: ProfileReport) => ({ name: p.name, core: p.core, extended: p.extended });

describe("Gateway API conformance, MESH-HTTP profile, on the real node", { timeout: 30 * 60_000 }, () => {
  it("passes every core test and every claimed extended feature, as the committed report says", async () => {
    if (process.getuid?.() !== 0) throw new Error("the conformance run starts the real node, which needs root: run the suite as root");
    const scratch = await mkdtemp(path.join(tmpdir(), "weft-conformance-test-"));
    try {
      const report = path.join(scratch, "report.yaml");
      const run = await new Promise<{ code: number; stdout: string; stderr: string }>((resolve) =>
        execFile(
          path.join(root, "node_modules", ".bin", "node"),
          [path.join(root, "test", "k8s", "conformance", "run.ts"), "--report", report, "--timeout-minutes", "20"],
          { cwd: root, encoding: "utf8", maxBuffer: 64 * 1024 * 1024 },
          (e, stdout, stderr) => resolve({ code: e ? (typeof e.code === "number" ? e.code : 1) : 0, stdout, stderr }),
        ),
      );
      const failed = run.stdout.split("\n").filter((l) => l.startsWith("FAIL"));
      assert.equal(run.code, 0, `the suite failed: ${failed.join("; ") || "see below"}\n${run.stderr.split("\n").slice(-30).join("\n")}`);
      const [mesh] = profiles(await readFile(report, "utf8"));
      assert.equal(mesh?.name, "MESH-HTTP");
      assert.equal(mesh.core.result, "success", JSON.stringify(mesh));
      assert.equal(mesh.core.statistics.Failed, 0);
      assert.equal(mesh.core.statistics.Passed, 7, "MESH-HTTP has 7 core tests at v1.6.3");
      assert.equal(mesh.extended?.result, "success", JSON.stringify(mesh));
      const [committed] = profiles(await readFile(COMMITTED, "utf8"));
      assert.deepEqual(
        outcome(mesh),
        outcome(committed!),
        `${path.relative(root, COMMITTED)} no longer says what the suite says: rerun node_modules/.bin/node test/k8s/conformance/run.ts and commit its report`,
      );
    } finally {
      await rm(scratch, { recursive: true, force: true });
    }
  });
});
