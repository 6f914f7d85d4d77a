// runtimes: node deno bun
// Every configuration shown in docs/examples is one the proxy accepts, so copied examples work.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { parseConfigText } from "../proxy/config/validate.ts";

const dir = path.resolve(import.meta.dirname ?? ".", "..", "docs", "examples");

describe("documented examples", () => {
  const files = readdirSync(dir).filter((f) => f.endsWith(".json"));
  it("has examples to check", () => assert.ok(files.length > 0));
  for (const file of files) {
    it(`${file} is a valid proxy configuration`, () => {
      const config = parseConfigText(readFileSync(path.join(dir, file), "utf8"), file);
      assert.ok(config.listeners.length > 0);
    });
  }
});
