// `npm test`: type check, then every suite on Node, and the data-plane suites again on Deno
// and on Bun. Ends with one line that counts everything: "N passed, N failed".
import { spawn } from "node:child_process";
import { readdirSync, existsSync, rmSync } from "node:fs";
import process from "node:process";
import path from "node:path";
import { ARTIFACTS } from "./hostile/artifacts.ts";

const root = path.resolve(import.meta.dirname ?? ".", "..");
const bin = (name: string) => path.join(root, "node_modules", ".bin", name);

// Suites directly in test/ and in test/hostile/ exercise the data plane and must pass on all
// three runtimes; the control plane runs on Node (docs/runtimes.md), so test/control/ runs on
// Node only.
const only = process.argv.slice(2);
const suitesIn = (dir: string) =>
  readdirSync(path.join(root, dir))
    .filter((f) => f.endsWith(".test.ts"))
    .map((f) => `${dir}/${f}`)
    .filter((f) => only.length === 0 || only.some((o) => f.includes(o)));
const dataPlane = [...suitesIn("test"), ...suitesIn("test/hostile")];
const controlPlane = existsSync(path.join(root, "test", "control")) ? suitesIn("test/control") : [];

interface Step {
  name: string;
  command: string;
  args: string[];
  count: (output: string) => { passed: number; failed: number };
}

const last = (output: string, re: RegExp) => {
  const all = [...output.matchAll(re)];
  return all.length ? Number(all[all.length - 1][1]) : 0;
};

const steps: Step[] = [
  {
    name: "typecheck (tsc --noEmit, strict)",
    command: bin("tsc"),
    args: ["--noEmit", "-p", "tsconfig.json"],
    count: () => ({ passed: 0, failed: 0 }),
  },
  {
    name: "Node.js",
    command: bin("node"),
    args: ["--test", "--test-reporter=spec", "--test-concurrency=1", ...dataPlane],
    count: (o) => ({ passed: last(o, /ℹ pass (\d+)/g), failed: last(o, /ℹ fail (\d+)/g) }),
  },
  // Without files, node --test would look for suites everywhere.
  ...(controlPlane.length === 0
    ? []
    : [
        {
          name: "Node.js, control plane",
          command: bin("node"),
          args: ["--test", "--test-reporter=spec", "--test-concurrency=1", ...controlPlane],
          count: (o: string) => ({ passed: last(o, /ℹ pass (\d+)/g), failed: last(o, /ℹ fail (\d+)/g) }),
        },
      ]),
  {
    name: "Deno",
    command: bin("deno"),
    args: ["test", "-A", "--no-check", ...dataPlane],
    count: (o) => {
      const m = /(\d+) passed(?: \((\d+) steps?\))? \| (\d+) failed(?: \((\d+) steps?\))?/.exec(o.split("\n").reverse().find((l) => / passed .*\| \d+ failed/.test(l)) ?? "");
      if (!m) return { passed: 0, failed: 0 };
      return { passed: Number(m[2] ?? m[1]), failed: Number(m[4] ?? m[3]) };
    },
  },
  {
    name: "Bun",
    command: bin("bun"),
    args: ["test", ...dataPlane.map((f) => `./${f}`)],
    count: (o) => ({ passed: last(o, /^\s*(\d+) pass$/gm), failed: last(o, /^\s*(\d+) fail$/gm) }),
  },
  {
    name: "reliability report (docs/reliability.md)",
    command: bin("node"),
    args: ["test/hostile/report.ts"],
    count: () => ({ passed: 0, failed: 0 }),
  },
];

const STEP_LIMIT_MS = 30 * 60_000;

function run(step: Step): Promise<{ code: number; output: string }> {
  return new Promise((resolve) => {
    if (!existsSync(step.command)) {
      resolve({ code: 127, output: `${step.command} is missing: run "npm install" first\n` });
      return;
    }
    process.stdout.write(`\n=== ${step.name}: ${path.basename(step.command)} ${step.args.join(" ")}\n`);
    const child = spawn(step.command, step.args, { cwd: root, env: { ...process.env, NO_COLOR: "1", FORCE_COLOR: "0" }, stdio: ["ignore", "pipe", "pipe"] });
    let output = "";
    const take = (d: Buffer) => {
      output += d.toString();
      process.stdout.write(d);
    };
    child.stdout.on("data", take);
    child.stderr.on("data", take);
    // A suite whose process never exits (a handle left open after its last test) would hold
    // the run until CI's own limit; every step takes minutes, so this is a hang.
    const timer = setTimeout(() => {
      take(Buffer.from(`\n=== ${step.name}: still running after ${STEP_LIMIT_MS / 60_000} min; stopping it. A suite's process did not exit: look for a timer or socket left open after its last test.\n`));
      child.kill("SIGTERM");
      setTimeout(() => child.kill("SIGKILL"), 5000).unref();
    }, STEP_LIMIT_MS);
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code: code ?? 1, output });
    });
  });
}

// A full run starts the reliability report afresh, so a runtime that fails to start shows as not run.
if (only.length === 0) rmSync(ARTIFACTS, { recursive: true, force: true });
let passed = 0;
let failed = 0;
const failures: string[] = [];
for (const step of steps) {
  const { code, output } = await run(step);
  const counts = step.count(output);
  passed += counts.passed;
  failed += counts.failed;
  if (code !== 0) failures.push(`${step.name} (exit ${code})`);
  process.stdout.write(`=== ${step.name}: ${code === 0 ? "ok" : "FAILED"} (${counts.passed} passed, ${counts.failed} failed)\n`);
}
if (failures.length) process.stdout.write(`\nfailed steps: ${failures.join(", ")}\n`);
process.stdout.write(`\n${passed} passed, ${failed} failed\n`);
process.exit(failures.length ? 1 : 0);
