// The reference host of `weft filter test --host extism`: a filter run by the official Extism JS
// SDK (@extism/extism) instead of weft's runtime. Extism's own kernel (memory blocks, config,
// variables, logs, error_set) is the SDK's; the weft host functions (`extism:host/user`) are the
// same code as in the proxy (`userImports`, proxy/filters/message-ops.ts) over the SDK's blocks.
// What the SDK cannot do, or does differently, is said where it happens and in docs/filter-pdks.md:
//
// - The SDK's host functions get a CallContext (the SDK's blocks), never the guest's memory;
//   weft_read and weft_write copy between a block and the module's own memory, so they reach it
//   through the plug-in's public getInstance(), which only a plug-in run in the foreground (the
//   SDK's default, `runInWorker: false`) has.
// - @extism/extism 1.0.3 (npm's latest) predates three kernel functions current PDKs import:
//   `log_trace`, `get_log_level` (extism-pdk's log macros, weft's SDK) and `http_headers`
//   (extism_pdk::http). A module importing one does not instantiate on the bare SDK
//   (test/filter-reference-host.test.ts shows it), so they are added here (KERNEL_ADDITIONS).
// - The SDK ignores a phase function's i32 result (its call() discards it): only error_set makes a
//   call fail there, so a filter that returns non-zero without error_set succeeds on it, and one
//   that calls error_set and returns 0 fails on it (weft goes by the result).
// - No deadline and no memory ceiling: the SDK runs the module's own bytes, unmetered.
import createPlugin, { type CallContext, type ExtismPluginOptions, type Plugin } from "@extism/extism";
import { FilterFault } from "../../proxy/filters/fault.ts";
import { failClosedReply } from "../../proxy/filters/filter.ts";
import {
  assemblyScriptImports,
  LOG_LEVELS,
  userImports,
  type BlockIO,
  type FilterLogLevelName,
  type UserHost,
} from "../../proxy/filters/imports.ts";
import type { FilterMessage, FilterPhaseName } from "../../proxy/filters/message.ts";
import { engineFault } from "../../proxy/filters/trap-text.ts";
import type { PhaseRunner, RunnerContext } from "./filter-test.ts";

/** A host function as the SDK calls it: the call's context, then the guest's arguments. */
type HostFunction = NonNullable<ExtismPluginOptions["functions"]>[string][string];

/** The weft host functions over the SDK's blocks: `context` is the call's, set by each call into them. */
function blockIO(current: () => CallContext): BlockIO {
  const block = (offset: bigint) => {
    const output = current().read(offset);
    if (output === null) throw new FilterFault("trap", `${offset} is not the offset of a memory block`);
    return output;
  };
  // The SDK's store() keeps a Uint8Array's whole underlying buffer as the block (it ignores the
  // view's offset and length), and refuses an empty string: so bytes go in as their own copy, and
  // nothing as a new empty block.
  const write = (bytes: Uint8Array) => (bytes.length === 0 ? current().alloc(0) : current().store(bytes.slice()));
  return {
    readString: (offset) => block(offset).text(),
    read: (offset) => block(offset).bytes(),
    write,
    writeString: (text) => write(new TextEncoder().encode(text)),
  };
}

/** The SDK's config is strings; weft's config_get gives strings as they are and anything else as JSON (docs/filter-abi.md). */
function pluginConfig(settings: Readonly<Record<string, unknown>>): Record<string, string> {
  const config: Record<string, string> = {};
  for (const [key, value] of Object.entries(settings))
    if (value !== undefined && value !== null) config[key] = typeof value === "string" ? value : JSON.stringify(value);
  return config;
}

const PLUGIN_ERROR = "Plugin-originated error: ";

/** What a failed call becomes, in weft's words where the failure is the same. */
function describe(phase: FilterPhaseName, e: unknown): FilterFault {
  const message = (e as Error)?.message ?? "";
  // error_set: the SDK's call() throws with the filter's message.
  if (message.startsWith(PLUGIN_ERROR)) return new FilterFault("error", `${phase} failed: ${message.slice(PLUGIN_ERROR.length)}`);
  return engineFault(e);
}

/**
 * The kernel functions current PDKs import that @extism/extism 1.0.3 does not provide, with what
 * the Extism kernel (and weft) does for each. They are added to the SDK's own `extism:host/env`.
 */
function kernelAdditions(host: UserHost, logLevel: number): Record<string, HostFunction> {
  return {
    log_trace: (context: CallContext, offset: bigint) => {
      if (logLevel === 0) host.log("trace", context.read(offset)?.text() ?? "");
    },
    get_log_level: () => logLevel,
    // No response, ever: http_request fails first (the SDK logs "http_request is not enabled" and returns 0).
    http_headers: () => 0n,
  };
}
export const KERNEL_ADDITIONS = ["log_trace", "get_log_level", "http_headers"] as const;

/** A filter under @extism/extism for one sample config, run phase by phase like weft's Filter with FailClose. */
export async function extismRunner({ wasm, compiled, config, log, metrics, state }: RunnerContext): Promise<PhaseRunner> {
  const filterId = `${config.namespace}/${config.name}`;
  const filterLog = log.child({ filter: filterId, host: "extism", source: "filter" });
  const logLevel = LOG_LEVELS.indexOf(config.logLevel);
  let context: CallContext | null = null;
  let memory: WebAssembly.Memory | null = null;
  const host: UserHost & { message: FilterMessage | null } = {
    message: null,
    state,
    configJson: JSON.stringify(config.config ?? {}),
    filterId,
    metric: (kind, name, value) => {
      const problem = metrics.record(filterId, kind, name, value);
      if (problem) filterLog.warn("filter metric refused", { problem });
    },
    log: (level: FilterLogLevelName, message: string) => {
      if (LOG_LEVELS.indexOf(level) >= logLevel) filterLog[level === "trace" ? "debug" : level](message);
    },
    memory: () => {
      if (!memory) throw new FilterFault("trap", "the module's memory is not reachable (the plug-in runs in a worker)");
      return memory;
    },
    // The SDK has no deadline to move.
    extendDeadline: () => {},
  };
  const io = blockIO(() => {
    if (!context) throw new FilterFault("trap", "a weft host function was called outside a phase call");
    return context;
  });
  // Each weft function gets the SDK's CallContext first; it is the same object for every call
  // of this plug-in, but taken from the call, as the SDK hands it.
  const withContext = (fns: WebAssembly.ModuleImports): Record<string, HostFunction> =>
    Object.fromEntries(
      Object.entries(fns).map(([name, fn]) => [
        name,
        (ctx: CallContext, ...args: unknown[]) => {
          context = ctx;
          return (fn as (...a: unknown[]) => unknown)(...args);
        },
      ]),
    );
  const settings = (config.config ?? {}) as Record<string, unknown>;
  // The SDK's own logger for its kernel log functions (which it does not filter by level).
  const logger = {
    error: (m: string) => host.log("error", m),
    warn: (m: string) => host.log("warn", m),
    info: (m: string) => host.log("info", m),
    debug: (m: string) => host.log("debug", m),
  } as unknown as Console;
  // The config goes where an Extism manifest has it and, since @extism/extism 1.0.3 reads only
  // its options' `config` (it ignores the manifest's), there too.
  const pluginSettings = pluginConfig(settings);
  const plugin: Plugin = await createPlugin(
    { wasm: [{ data: wasm }], config: pluginSettings },
    {
      config: pluginSettings,
      useWasi: false,
      runInWorker: false,
      logger,
      functions: {
        "extism:host/env": kernelAdditions(host, logLevel),
        "extism:host/user": withContext(userImports(host, io)),
        // AssemblyScript's runtime imports, as weft provides them (docs/filter-abi.md).
        env: withContext(assemblyScriptImports(() => host.memory())),
      },
    },
  );
  memory = (await plugin.getInstance()).exports.memory as WebAssembly.Memory;
  return {
    handles: (phase) => compiled.phases.has(phase),
    run: async (phase, message) => {
      // As the proxy's chain: a phase the module does not export is not called.
      if (!compiled.phases.has(phase)) return null;
      message.phase = phase;
      host.message = message;
      try {
        await plugin.call(phase);
      } catch (e) {
        const fault = describe(phase, e);
        filterLog.error("filter failed; answering 500 (FailClose)", { phase, kind: fault.kind, error: fault.message });
        return failClosedReply(`filter ${filterId} failed: ${fault.message}`);
      } finally {
        host.message = null;
        context = null;
      }
      return message.reply;
    },
    close: () => plugin.close(),
  };
}
