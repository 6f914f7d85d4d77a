// runtimes: node
// Local mode's reading of a directory: the same schemas as the cluster, errors that name the
// file, document and field, and a broken file that keeps its last good contents.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { parseFile, readDirectory } from "../../control/local/directory.ts";

const FILTER = `apiVersion: weft.dev/v1alpha1
kind: WasmFilter
metadata: { name: greeting, namespace: shop }
spec:
  url: marketplace://header-rewrite@1.0.0
  config: { response: { set: [{ name: x-a, value: b }] } }
`;

describe("local mode: reading a directory of YAML", () => {
  it("reads every kind a user would kubectl apply, plus LocalWorkload", () => {
    const read = parseFile(
      `${FILTER}---
apiVersion: v1
kind: Service
metadata: { name: catalog, namespace: shop }
spec: { selector: { app: catalog }, ports: [{ name: http, port: 80, targetPort: 8080 }] }
---
apiVersion: weft.dev/v1alpha1
kind: LocalWorkload
metadata: { name: catalog }
spec: { command: [node, catalog.ts], replicas: 2 }
`,
      "/x/shop.yaml",
    );
    assert.equal(read.wasmFilters[0]!.metadata.name, "greeting");
    assert.equal(read.services[0]!.ports[0]!.port, 80);
    assert.equal(read.workloads[0]!.workload.metadata.namespace, "default", "no namespace: default, as kubectl");
    assert.equal(read.workloads[0]!.workload.spec.serviceAccount, "default");
    assert.equal(read.workloads[0]!.dir, "/x");
  });

  it("names the file, the document and the field of a mistake", () => {
    assert.throws(
      () => parseFile(FILTER.replace("marketplace://header-rewrite@1.0.0", "ftp://x"), "/x/f.yaml"),
      /\/x\/f\.yaml: document 1 \(WasmFilter shop\/greeting\): spec\.url: must be oci:\/\/REGISTRY\/REPO:TAG/,
    );
    assert.throws(
      () => parseFile("apiVersion: apps/v1\nkind: StatefulSet\nmetadata: { name: d }\n", "/x/d.yaml"),
      /local mode reads Namespace, Service, HTTPRoute, WasmFilter, TrafficPolicy, AccessPolicy and LocalWorkload \(and skips a cluster's Deployment and ServiceAccount\), not StatefulSet/,
    );
    // A folder can hold a cluster's manifests beside local mode's (examples/shop/k8s/): those are skipped, not run.
    const skipped = parseFile(
      "apiVersion: apps/v1\nkind: Deployment\nmetadata: { name: d }\n---\napiVersion: v1\nkind: ServiceAccount\nmetadata: { name: s }\n",
      "/x/d.yaml",
    );
    assert.deepEqual(skipped.workloads, []);
    assert.throws(
      () => parseFile("apiVersion: weft.dev/v1alpha1\nkind: LocalWorkload\nmetadata: { name: w }\nspec: { command: [] }\n", "/x/w.yaml"),
      /spec\.command: give the program and its arguments/,
    );
    assert.throws(() => parseFile("kind: [", "/x/bad.yaml"), /bad\.yaml/);
  });

  it("keeps a broken file's last good contents and reports it", async () => {
    const dir = await mkdtemp(path.join(tmpdir(), "weft-local-"));
    try {
      const file = path.join(dir, "filters.yaml");
      await writeFile(file, FILTER);
      const first = await readDirectory(dir);
      assert.equal(first.problems.size, 0);
      await writeFile(file, FILTER.replace("name: greeting", "name: Greeting_"));
      const second = await readDirectory(dir, first);
      assert.match(second.problems.get(file) ?? "", /metadata\.name: must be a Kubernetes object name/);
      assert.equal(second.files.get(file)!.wasmFilters[0]!.metadata.name, "greeting", "the last good filter stays");
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
