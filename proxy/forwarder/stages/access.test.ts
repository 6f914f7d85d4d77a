// runtimes: node deno bun
// The access stage: a refused caller gets 403 with the policy's reason and goes no further.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { harness } from "../../../test/support/request-path.ts";
import { access } from "./access.ts";

describe("access stage", () => {
  it("passes a request no policy refuses", () => {
    const h = harness([access], { refuse: () => null });
    h.tx.next();
    assert.ok(h.passed);
    assert.equal(h.exchange.sent, null);
  });

  it("answers a refused request 403 with the reason, flag RBAC, and goes no further", () => {
    const h = harness([access], { refuse: () => "no AccessPolicy allows spiffe://x" });
    h.tx.next();
    assert.equal(h.passed, false);
    assert.equal(h.exchange.sent?.status, 403);
    assert.equal(h.exchange.text, "no AccessPolicy allows spiffe://x\n");
    assert.equal(h.exchange.header("x-request-id"), h.tx.requestId);
    assert.equal(h.telemetry.last.responseFlag, "RBAC");
    assert.equal(h.telemetry.last.status, 403);
  });
});
