// A weft filter in Rust with no PDK and no dependencies: the host functions declared as plain
// externs, with the types docs/filter-abi.md gives them. Blocks are `u64` offsets (0: none);
// weft_respond's status and weft_metric's kind are `i32`, weft_metric's value an `f64`, and
// weft_read/weft_write take pointers into this module's own memory (`i32` on wasm32), so a
// whole block crosses in one call instead of one kernel call per 8 bytes.
//
// It requires an `x-tenant` header (400 without one), passes it upstream upper-cased as
// `x-tenant-id`, fails on purpose for the tenant "fail" (to show error_set), counts requests in
// a counter metric and records the tenant's length in a gauge.

// The manifest weft reads (docs/filter-abi.md "Manifest"), embedded by rustc in the custom
// section `weft.manifest`: no SDK needed.
#[link_section = "weft.manifest"]
#[used]
static MANIFEST: [u8; include_bytes!("../manifest.json").len()] = *include_bytes!("../manifest.json");

#[link(wasm_import_module = "extism:host/env")]
extern "C" {
    fn length(block: u64) -> u64;
    fn error_set(block: u64);
}

#[link(wasm_import_module = "extism:host/user")]
extern "C" {
    fn weft_get(name: u64) -> u64;
    fn weft_set(name: u64, value: u64);
    fn weft_respond(status: i32, headers: u64, body: u64);
    fn weft_metric(kind: i32, name: u64, value: f64);
    fn weft_read(block: u64, ptr: *mut u8);
    fn weft_write(ptr: *const u8, len: i32) -> u64;
}

const COUNTER: i32 = 0;
const GAUGE: i32 = 1;

/// A new block holding `bytes`, in one host call.
fn block(bytes: &[u8]) -> u64 {
    unsafe { weft_write(bytes.as_ptr(), bytes.len() as i32) }
}

/// A block's bytes, in one host call.
fn read(block: u64) -> Vec<u8> {
    let mut bytes = vec![0u8; unsafe { length(block) } as usize];
    unsafe { weft_read(block, bytes.as_mut_ptr()) };
    bytes
}

fn get(name: &str) -> Option<Vec<u8>> {
    match unsafe { weft_get(block(name.as_bytes())) } {
        0 => None,
        found => Some(read(found)),
    }
}

fn set(name: &str, value: &[u8]) {
    unsafe { weft_set(block(name.as_bytes()), block(value)) }
}

fn metric(kind: i32, name: &str, value: f64) {
    unsafe { weft_metric(kind, block(name.as_bytes()), value) }
}

#[no_mangle]
pub extern "C" fn on_request_headers() -> i32 {
    metric(COUNTER, "requests", 1.0);
    let Some(tenant) = get("x-tenant") else {
        unsafe { weft_respond(400, block(b"content-type: text/plain\n"), block(b"x-tenant is required\n")) };
        return 0;
    };
    if tenant == b"fail" {
        // A non-zero result is a failure; error_set says why (x-weft-error, the logs).
        unsafe { error_set(block(b"tenant \"fail\" asked the filter to fail")) };
        return 1;
    }
    metric(GAUGE, "tenant_length", tenant.len() as f64);
    set("x-tenant-id", &tenant.to_ascii_uppercase());
    0
}

#[no_mangle]
pub extern "C" fn on_response_headers() -> i32 {
    if let Some(id) = get("request.x-tenant-id") {
        set("x-served-tenant", &id);
    }
    0
}
