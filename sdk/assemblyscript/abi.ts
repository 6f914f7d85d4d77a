// The filter ABI's imports (docs/filter-abi.md). AssemblyScript imports only the functions a
// filter actually calls, so declaring all of them here costs nothing.

// Extism kernel functions (memory blocks, config, variables, logs).
@external("extism:host/env", "length") export declare function length(block: u64): u64;
@external("extism:host/env", "error_set") export declare function error_set(block: u64): void;
@external("extism:host/env", "var_get") export declare function var_get(key: u64): u64;
@external("extism:host/env", "var_set") export declare function var_set(key: u64, value: u64): void;
@external("extism:host/env", "log_trace") export declare function log_trace(message: u64): void;
@external("extism:host/env", "log_debug") export declare function log_debug(message: u64): void;
@external("extism:host/env", "log_info") export declare function log_info(message: u64): void;
@external("extism:host/env", "log_warn") export declare function log_warn(message: u64): void;
@external("extism:host/env", "log_error") export declare function log_error(message: u64): void;
@external("extism:host/env", "get_log_level") export declare function get_log_level(): i32;

// weft host functions.
@external("extism:host/user", "weft_get") export declare function weft_get(name: u64): u64;
@external("extism:host/user", "weft_set") export declare function weft_set(name: u64, value: u64): void;
@external("extism:host/user", "weft_add") export declare function weft_add(name: u64, value: u64): void;
@external("extism:host/user", "weft_remove") export declare function weft_remove(name: u64): void;
@external("extism:host/user", "weft_headers") export declare function weft_headers(): u64;
@external("extism:host/user", "weft_body") export declare function weft_body(): u64;
@external("extism:host/user", "weft_set_body") export declare function weft_set_body(body: u64): void;
@external("extism:host/user", "weft_respond") export declare function weft_respond(status: i32, headers: u64, body: u64): void;
@external("extism:host/user", "weft_config") export declare function weft_config(): u64;
@external("extism:host/user", "weft_now_ms") export declare function weft_now_ms(): i64;
@external("extism:host/user", "weft_counter_add") export declare function weft_counter_add(key: u64, delta: i64): i64;
@external("extism:host/user", "weft_metric") export declare function weft_metric(kind: i32, name: u64, value: f64): void;
@external("extism:host/user", "weft_verify") export declare function weft_verify(alg: u64, key: u64, data: u64, signature: u64): i32;
@external("extism:host/user", "weft_read") export declare function weft_read(block: u64, ptr: usize): void;
@external("extism:host/user", "weft_write") export declare function weft_write(ptr: usize, len: i32): u64;
