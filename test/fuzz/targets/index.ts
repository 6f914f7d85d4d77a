// Every fuzz target by name: the CLI runs them, the corpus replay (test/hostile/fuzz-replay.test.ts) checks them all.
import type { FuzzTarget } from "../target.ts";
import { http1Head } from "./http1-head.ts";
import { chunked } from "./chunked.ts";
import { forwardableHeadersTarget } from "./forwardable-headers.ts";
import { filterHeaders } from "./filter-headers.ts";
import { wasmMeter } from "./wasm-meter.ts";
import { config } from "./config.ts";
import { csr } from "./csr.ts";
import { ack } from "./ack.ts";
import { admission } from "./admission.ts";

export const TARGETS: readonly FuzzTarget[] = [
  http1Head,
  chunked,
  forwardableHeadersTarget,
  filterHeaders,
  wasmMeter,
  config,
  csr,
  ack,
  admission,
];
