// A worker thread that watches the fuzzing loop: the loop cannot be interrupted while a target
// runs synchronously, so when one input has run longer than the limit, this thread writes the
// input (shared with the loop through a SharedArrayBuffer) to a file, says so on stderr, and
// kills the process.
import { writeFileSync, writeSync } from "node:fs";
import process from "node:process";
import { workerData } from "node:worker_threads";

const { shared, limitMs, file } = workerData as { shared: SharedArrayBuffer; limitMs: number; file: string };
/** [running (0/1), input length, inputs started] */
const state = new Int32Array(shared, 0, 3);
const input = new Uint8Array(shared, 12);

let seen = -1;
let since = Date.now();
setInterval(() => {
  const started = Atomics.load(state, 2);
  if (Atomics.load(state, 0) === 0 || started !== seen) {
    seen = started;
    since = Date.now();
    return;
  }
  if (Date.now() - since < limitMs) return;
  writeFileSync(file, input.slice(0, Atomics.load(state, 1)));
  writeSync(2, `\nHANG: one input ran longer than ${limitMs} ms; it is in ${file}\n`);
  process.kill(process.pid, "SIGKILL");
}, 50);
