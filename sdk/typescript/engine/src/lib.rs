//! weft's full-TypeScript filter engine: QuickJS (quickjs-ng, through rquickjs) built as one
//! plain weft filter module (docs/filter-abi.md). It exports the four phase functions and
//! imports only what the ABI provides (`extism:host/env`, `extism:host/user`, `env.seed`), so
//! the proxy loads, meters and calls it like any other filter.
//!
//! The filter's JavaScript never reaches the proxy as source: `weft filter build`
//! (sdk/typescript/build.ts) writes the esbuild bundle into this module with
//! `weft_engine_source`, evaluates it once with `weft_engine_init`, and saves the memory that
//! results as the module's data (a snapshot). Each instance starts from that memory with the
//! bundle already evaluated and its phase functions found, and the build drops the two
//! build-time exports and the phases the bundle does not define.
//!
//! The JavaScript side sees one native object, `globalThis.__weft`, that the SDK
//! (sdk/typescript/index.ts) and its polyfills wrap; its functions map one to one onto the
//! ABI's host functions.

use rquickjs::{
    function::Func, Coerced, Context, Ctx, Error, Exception, FromJs, Function, IntoJs, Module, Object, Persistent,
    Runtime, TypedArray, Value,
};
use std::cell::{Cell, RefCell};

#[link(wasm_import_module = "extism:host/env")]
extern "C" {
    fn length(block: u64) -> u64;
    fn error_set(block: u64);
    fn var_get(key: u64) -> u64;
    fn var_set(key: u64, value: u64);
    fn log_trace(message: u64);
    fn log_debug(message: u64);
    fn log_info(message: u64);
    fn log_warn(message: u64);
    fn log_error(message: u64);
    fn get_log_level() -> i32;
}

#[link(wasm_import_module = "extism:host/user")]
extern "C" {
    fn weft_get(name: u64) -> u64;
    fn weft_set(name: u64, value: u64);
    fn weft_add(name: u64, value: u64);
    fn weft_remove(name: u64);
    fn weft_headers() -> u64;
    fn weft_body() -> u64;
    fn weft_set_body(body: u64);
    fn weft_respond(status: i32, headers: u64, body: u64);
    fn weft_config() -> u64;
    fn weft_now_ms() -> i64;
    fn weft_counter_add(key: u64, delta: i64) -> i64;
    fn weft_metric(kind: i32, name: u64, value: f64);
    fn weft_verify(alg: u64, key: u64, data: u64, signature: u64) -> i32;
    fn weft_read(block: u64, ptr: u32);
    fn weft_write(ptr: u32, len: u32) -> u64;
}

#[link(wasm_import_module = "env")]
extern "C" {
    /// A fresh number per instance (the ABI's `env.seed`), for Math.random.
    fn seed() -> f64;
}

/// rquickjs-sys' wasm32-unknown-unknown shim reads the clock through this one function;
/// defining it here keeps it from becoming an import, and gives QuickJS (Date.now(),
/// performance.now()) the proxy's clock. The build's host answers 0, so a snapshot never
/// depends on when it was taken.
#[no_mangle]
pub extern "C" fn __rquickjs_host_now_us() -> f64 {
    unsafe { weft_now_ms() as f64 * 1000.0 }
}

// ---- memory blocks ---------------------------------------------------------------------

/// Bytes of this module's memory copied into a new host block, in one host call.
fn block(bytes: &[u8]) -> u64 {
    unsafe { weft_write(bytes.as_ptr() as u32, bytes.len() as u32) }
}

/// A block's bytes, or None for block 0 ("absent").
fn read(block: u64) -> Option<Vec<u8>> {
    if block == 0 {
        return None;
    }
    let len = unsafe { length(block) } as usize;
    let mut bytes = Vec::<u8>::with_capacity(len);
    unsafe {
        weft_read(block, bytes.as_mut_ptr() as u32);
        bytes.set_len(len);
    }
    Some(bytes)
}

fn text(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

fn read_text(block: u64) -> Option<String> {
    read(block).map(text)
}

/// A string (as UTF-8) or a Uint8Array's bytes, into a block: what bodies, state values and
/// signatures accept. The array is copied straight from the engine's heap.
fn data_block<'js>(ctx: &Ctx<'js>, value: &Value<'js>, what: &str) -> rquickjs::Result<u64> {
    if let Some(s) = value.as_string() {
        return Ok(block(s.to_string()?.as_bytes()));
    }
    if let Some(array) = value.as_object().and_then(|o| TypedArray::<u8>::from_object(o.clone()).ok()) {
        if let Some(raw) = array.as_raw() {
            return Ok(unsafe { weft_write(raw.as_ptr() as *const u8 as u32, raw.len() as u32) });
        }
    }
    Err(Exception::throw_type(ctx, &format!("{what} must be a string or a Uint8Array")))
}

fn optional_data_block<'js>(ctx: &Ctx<'js>, value: Option<Value<'js>>, what: &str) -> rquickjs::Result<u64> {
    match value {
        Some(v) if !v.is_null() && !v.is_undefined() => data_block(ctx, &v, what),
        _ => Ok(0),
    }
}

// Absent is null, as the SDK's types say (rquickjs would make a None undefined).
fn text_value(ctx: Ctx<'_>, text: Option<String>) -> rquickjs::Result<Value<'_>> {
    match text {
        Some(t) => t.into_js(&ctx),
        None => Ok(Value::new_null(ctx)),
    }
}

fn bytes_value<'js>(ctx: Ctx<'js>, bytes: Option<Vec<u8>>) -> rquickjs::Result<Value<'js>> {
    match bytes {
        Some(b) => Ok(TypedArray::<u8>::new(ctx, b)?.into_value()),
        None => Ok(Value::new_null(ctx)),
    }
}

// ---- the native object ---------------------------------------------------------------

fn get(ctx: Ctx<'_>, name: String) -> rquickjs::Result<Value<'_>> {
    text_value(ctx, read_text(unsafe { weft_get(block(name.as_bytes())) }))
}
fn set(name: String, value: String) {
    unsafe { weft_set(block(name.as_bytes()), block(value.as_bytes())) }
}
fn add(name: String, value: String) {
    unsafe { weft_add(block(name.as_bytes()), block(value.as_bytes())) }
}
fn remove(name: String) {
    unsafe { weft_remove(block(name.as_bytes())) }
}
fn headers(ctx: Ctx<'_>) -> rquickjs::Result<Value<'_>> {
    text_value(ctx, read_text(unsafe { weft_headers() }))
}
fn body(ctx: Ctx<'_>) -> rquickjs::Result<Value<'_>> {
    bytes_value(ctx, read(unsafe { weft_body() }))
}
fn set_body<'js>(ctx: Ctx<'js>, body: Value<'js>) -> rquickjs::Result<()> {
    let b = data_block(&ctx, &body, "the body")?;
    unsafe { weft_set_body(b) };
    Ok(())
}
fn respond<'js>(ctx: Ctx<'js>, status: i32, headers: Option<String>, body: Option<Value<'js>>) -> rquickjs::Result<()> {
    let h = headers.map(|h| block(h.as_bytes())).unwrap_or(0);
    let b = optional_data_block(&ctx, body, "the reply's body")?;
    unsafe { weft_respond(status, h, b) };
    Ok(())
}
fn config() -> String {
    read_text(unsafe { weft_config() }).unwrap_or_else(|| "{}".into())
}
fn now() -> f64 {
    unsafe { weft_now_ms() as f64 }
}
fn counter_add(key: String, delta: f64) -> f64 {
    unsafe { weft_counter_add(block(key.as_bytes()), delta as i64) as f64 }
}
fn metric(kind: i32, name: String, value: f64) {
    unsafe { weft_metric(kind, block(name.as_bytes()), value) }
}
fn var_get_bytes(ctx: Ctx<'_>, key: String) -> rquickjs::Result<Value<'_>> {
    bytes_value(ctx, read(unsafe { var_get(block(key.as_bytes())) }))
}
fn var_set_bytes<'js>(ctx: Ctx<'js>, key: String, value: Option<Value<'js>>) -> rquickjs::Result<()> {
    let v = optional_data_block(&ctx, value, "a state value")?;
    unsafe { var_set(block(key.as_bytes()), v) };
    Ok(())
}
fn log(level: i32, message: String) {
    let b = block(message.as_bytes());
    unsafe {
        match level {
            0 => log_trace(b),
            1 => log_debug(b),
            2 => log_info(b),
            3 => log_warn(b),
            _ => log_error(b),
        }
    }
}
fn log_level() -> i32 {
    unsafe { get_log_level() }
}
fn verify<'js>(ctx: Ctx<'js>, alg: String, key: String, data: Value<'js>, signature: Value<'js>) -> rquickjs::Result<i32> {
    let d = data_block(&ctx, &data, "the signed data")?;
    let s = data_block(&ctx, &signature, "the signature")?;
    Ok(unsafe { weft_verify(block(alg.as_bytes()), block(key.as_bytes()), d, s) })
}
fn fail(message: String) {
    unsafe { error_set(block(message.as_bytes())) }
}
/// TextEncoder's work (sdk/typescript/polyfills.ts): QuickJS has none.
fn encode(ctx: Ctx<'_>, text: String) -> rquickjs::Result<TypedArray<'_, u8>> {
    TypedArray::new(ctx, text.into_bytes())
}
/// TextDecoder's work: UTF-8, invalid sequences as U+FFFD, a leading BOM dropped (WHATWG).
fn decode(bytes: TypedArray<'_, u8>) -> String {
    let Some(raw) = bytes.as_raw() else { return String::new() };
    let all = unsafe { raw.as_ref() };
    let bytes = all.strip_prefix(b"\xef\xbb\xbf").unwrap_or(all);
    String::from_utf8_lossy(bytes).into_owned()
}

thread_local! {
    /// Math.random's state; 0 until an instance first draws, then seeded from `env.seed`.
    /// QuickJS's own generator lives in the snapshot and would give every instance the same
    /// numbers, so it is replaced.
    static RANDOM: Cell<u64> = const { Cell::new(0) };
}

/// xorshift64* (not for secrets: there is no crypto.getRandomValues in a filter).
fn random() -> f64 {
    RANDOM.with(|state| {
        let mut x = state.get();
        if x == 0 {
            // splitmix64 of the seed's bits, so that close seeds give unrelated states.
            let mut z = unsafe { seed() }.to_bits().wrapping_add(0x9e37_79b9_7f4a_7c15);
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            x = (z ^ (z >> 31)) | 1;
        }
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        state.set(x);
        (x.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64
    })
}

fn install_native(ctx: &Ctx<'_>) -> rquickjs::Result<()> {
    let w = Object::new(ctx.clone())?;
    w.set("get", Func::from(get))?;
    w.set("set", Func::from(set))?;
    w.set("add", Func::from(add))?;
    w.set("remove", Func::from(remove))?;
    w.set("headers", Func::from(headers))?;
    w.set("body", Func::from(body))?;
    w.set("setBody", Func::from(set_body))?;
    w.set("respond", Func::from(respond))?;
    w.set("config", Func::from(config))?;
    w.set("now", Func::from(now))?;
    w.set("counterAdd", Func::from(counter_add))?;
    w.set("metric", Func::from(metric))?;
    w.set("varGet", Func::from(var_get_bytes))?;
    w.set("varSet", Func::from(var_set_bytes))?;
    w.set("log", Func::from(log))?;
    w.set("logLevel", Func::from(log_level))?;
    w.set("verify", Func::from(verify))?;
    w.set("fail", Func::from(fail))?;
    w.set("encode", Func::from(encode))?;
    w.set("decode", Func::from(decode))?;
    ctx.globals().set("__weft", w)?;
    let math: Object = ctx.globals().get("Math")?;
    math.set("random", Func::from(random))?;
    Ok(())
}

// ---- the engine ------------------------------------------------------------------------

const PHASES: [&str; 4] = ["on_request_headers", "on_request_body", "on_response_headers", "on_response_body"];

struct Engine {
    context: Context,
    phases: [Option<Persistent<Function<'static>>>; 4],
    // Last: the context and the functions must go before the runtime that owns them.
    _runtime: Runtime,
}

thread_local! {
    static ENGINE: RefCell<Option<Engine>> = const { RefCell::new(None) };
    /// The bundle, written by the build before `weft_engine_init`; empty in the snapshot.
    static SOURCE: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// What went wrong, as "Name: message" and the stack QuickJS recorded, for the proxy's log
/// and FailClose's 500.
fn describe(ctx: &Ctx<'_>, error: Error) -> String {
    if !matches!(error, Error::Exception) {
        return error.to_string();
    }
    let thrown = ctx.catch();
    let summary = Coerced::<String>::from_js(ctx, thrown.clone()).map(|c| c.0).unwrap_or_else(|_| "an exception".into());
    let stack: Option<String> = thrown.as_object().and_then(|o| o.get("stack").ok());
    match stack {
        Some(s) if !s.trim().is_empty() => format!("{summary}\n{}", s.trim_end()),
        _ => format!("uncaught {summary}"),
    }
}

fn set_error(message: &str) {
    // QuickJS could not allocate: trap instead of reporting an error, so that the proxy sees
    // the refused memory.grow and reports a memory fault with the filter's limit.
    if message.starts_with("InternalError: out of memory") {
        core::arch::wasm32::unreachable();
    }
    unsafe { error_set(block(message.as_bytes())) }
}

/// Build time: a buffer of `len` bytes for the bundle; returns its address.
#[no_mangle]
pub extern "C" fn weft_engine_source(len: u32) -> u32 {
    SOURCE.with(|s| {
        let mut s = s.borrow_mut();
        s.clear();
        s.resize(len as usize, 0);
        s.as_mut_ptr() as u32
    })
}

/// Build time: evaluates the bundle (an ES module) and keeps its phase functions. Returns a
/// bitmask of the phases it exports (bit i for PHASES[i]); 0 when it exports none, with the
/// names it does export in error_set; -1 when it fails, with the reason in error_set.
#[no_mangle]
pub extern "C" fn weft_engine_init() -> i32 {
    let source = SOURCE.with(|s| std::mem::take(&mut *s.borrow_mut()));
    let runtime = Runtime::new().expect("a QuickJS runtime");
    // Half of Rust's 1 MiB shadow stack: deep recursion becomes a RangeError the filter can
    // catch, with room left for the host calls and Rust frames below it.
    runtime.set_max_stack_size(512 * 1024);
    let context = Context::full(&runtime).expect("a QuickJS context");
    let found = context.with(|ctx| -> Result<[Option<Persistent<Function<'static>>>; 4], String> {
        install_native(&ctx).map_err(|e| describe(&ctx, e))?;
        let (module, evaluated) = Module::declare(ctx.clone(), "filter.js", source)
            .and_then(|m| m.eval())
            .map_err(|e| describe(&ctx, e))?;
        evaluated.finish::<()>().map_err(|e| describe(&ctx, e))?;
        let namespace = module.namespace().map_err(|e| describe(&ctx, e))?;
        let mut phases: [Option<Persistent<Function<'static>>>; 4] = Default::default();
        for (i, name) in PHASES.iter().enumerate() {
            let value: Value = namespace.get(*name).map_err(|e| describe(&ctx, e))?;
            if value.is_undefined() {
                continue;
            }
            let Some(f) = value.into_function() else { return Err(format!("the export {name} is not a function")) };
            phases[i] = Some(Persistent::save(&ctx, f));
        }
        if phases.iter().all(Option::is_none) {
            let names: Vec<String> = namespace.keys::<String>().filter_map(Result::ok).collect();
            return Err(format!("exports: {}", if names.is_empty() { "nothing".into() } else { names.join(", ") }));
        }
        Ok(phases)
    });
    match found {
        Ok(phases) => {
            let mask = phases.iter().enumerate().fold(0, |m, (i, p)| if p.is_some() { m | (1 << i) } else { m });
            runtime.run_gc();
            // Whatever the top-level code drew came from the build's fixed seed: instances
            // start unseeded and seed from their own env.seed.
            RANDOM.with(|r| r.set(0));
            ENGINE.with(|e| *e.borrow_mut() = Some(Engine { context, phases, _runtime: runtime }));
            mask
        }
        Err(message) if message.starts_with("exports: ") => {
            set_error(&message["exports: ".len()..]);
            0
        }
        Err(message) => {
            set_error(&message);
            -1
        }
    }
}

/// A phase function's result as the ABI's return code. An async phase is settled here (the
/// job queue runs inside the call, under its deadline); so are microtasks it queued. (The
/// proxy puts "<phase> failed: " before the messages.)
fn settle<'js>(ctx: &Ctx<'js>, result: Value<'js>) -> Result<i32, String> {
    let mut value = result;
    if let Some(promise) = value.as_promise().cloned() {
        value = match promise.finish::<Value>() {
            Ok(v) => v,
            Err(Error::WouldBlock) => return Err("it awaited something that never settles (a filter has no timers or I/O)".into()),
            Err(e) => return Err(describe(ctx, e)),
        };
    }
    while ctx.execute_pending_job() {}
    if value.is_undefined() {
        return Ok(0);
    }
    if let Some(n) = value.as_int() {
        return Ok(n);
    }
    match value.as_float() {
        Some(f) if f.fract() == 0.0 && f.abs() <= i32::MAX as f64 => Ok(f as i32),
        _ => Err(format!("it returned {}, not Continue (0) or fail(message)", Coerced::<String>::from_js(ctx, value).map(|c| c.0).unwrap_or_default())),
    }
}

fn run(phase: usize) -> i32 {
    ENGINE.with(|engine| {
        let engine = engine.borrow();
        let Some(engine) = engine.as_ref() else {
            set_error("this is weft's TypeScript engine without a filter in it: build the filter with \"weft filter build\"");
            return 1;
        };
        let Some(function) = engine.phases[phase].clone() else { return 0 };
        engine.context.with(|ctx| {
            let outcome = function
                .restore(&ctx)
                .and_then(|f| f.call::<_, Value>(()))
                .map_err(|e| describe(&ctx, e))
                .and_then(|v| settle(&ctx, v));
            outcome.unwrap_or_else(|message| {
                set_error(&message);
                1
            })
        })
    })
}

#[no_mangle]
pub extern "C" fn on_request_headers() -> i32 {
    run(0)
}
#[no_mangle]
pub extern "C" fn on_request_body() -> i32 {
    run(1)
}
#[no_mangle]
pub extern "C" fn on_response_headers() -> i32 {
    run(2)
}
#[no_mangle]
pub extern "C" fn on_response_body() -> i32 {
    run(3)
}
