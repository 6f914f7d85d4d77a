;; weft's Extism kernel: the memory blocks through which a filter and the proxy pass bytes
;; (docs/filter-abi.md). A filter imports these functions from "extism:host/env"; linked
;; wasm-to-wasm, a PDK's byte-at-a-time copies (load_u64/store_u64 per 8 bytes) never cross
;; into JavaScript. The proxy reads and writes the same memory directly (blocks.ts).
;;
;; Layout, as Extism's own kernel: a block is an 8-byte header (its length, and a tag that
;; marks a live block) then its bytes. Offsets are 8-aligned; offset 0 means "no block". A
;; bump allocator serves blocks and `reset` releases them all after each phase call.
;; Faults trap (unreachable) after recording what went wrong in $fault/$fault_at, which the
;; proxy turns into the error the filter's failStrategy sees.
;;
;; Generated into kernel-wasm.ts by `node proxy/filters/kernel/build.ts`.
(module
  (import "weft:kernel" "memory" (memory 1))

  ;; Where the next block's header goes. The first block's bytes are at 16.
  (global $top (mut i32) (i32.const 8))
  ;; 0: none; 1: an allocation past the memory limit ($fault_at: the bytes it needed);
  ;; 2: an access outside every block ($fault_at: its offset, $fault_size: its bytes).
  (global $fault (mut i32) (i32.const 0))
  (global $fault_at (mut i64) (i64.const 0))
  (global $fault_size (mut i32) (i32.const 0))

  ;; A live block's tag: its offset mixed with the call's epoch, so that a header left over
  ;; from an earlier call (inside a later block's bytes) does not read as a block.
  (global $LIVE i32 (i32.const 0x7466_6577))
  (global $epoch (mut i32) (i32.const 0))
  (func $tag (param $at i32) (result i32)
    (i32.xor (i32.xor (local.get $at) (global.get $LIVE))
             (i32.mul (global.get $epoch) (i32.const 0x9e3779b1))))

  (func $fail (param $kind i32) (param $at i64) (param $size i32)
    (global.set $fault (local.get $kind))
    (global.set $fault_at (local.get $at))
    (global.set $fault_size (local.get $size))
    unreachable)

  (func $alloc32 (export "alloc32") (param $length i32) (result i32)
    (local $at i32) (local $end i64) (local $next i32) (local $pages i32)
    (local.set $at (i32.add (global.get $top) (i32.const 8)))
    ;; An empty block still takes a slot, or the next block would share its offset.
    (local.set $end
      (i64.add (i64.extend_i32_u (local.get $at))
               (i64.extend_i32_u (select (local.get $length) (i32.const 1) (local.get $length)))))
    (if (i64.gt_u (i64.add (local.get $end) (i64.const 7)) (i64.const 0xffff0000))
      (then (call $fail (i32.const 1) (local.get $end) (i32.const 0))))
    (local.set $next (i32.and (i32.add (i32.wrap_i64 (local.get $end)) (i32.const 7)) (i32.const -8)))
    (local.set $pages (i32.shr_u (i32.add (local.get $next) (i32.const 0xffff)) (i32.const 16)))
    (if (i32.gt_u (local.get $pages) (memory.size))
      (then
        (if (i32.eq (memory.grow (i32.sub (local.get $pages) (memory.size))) (i32.const -1))
          (then (call $fail (i32.const 1) (local.get $end) (i32.const 0))))))
    (i32.store (global.get $top) (local.get $length))
    (i32.store offset=4 (global.get $top) (call $tag (local.get $at)))
    (global.set $top (local.get $next))
    (local.get $at))

  ;; The header of the live block at $at, or -1. Its bytes end inside the blocks even if the
  ;; filter wrote over the header (which only it can read anyway).
  (func $header (param $at i64) (result i32)
    (local $p i32)
    (if (i64.lt_u (local.get $at) (i64.const 16)) (then (return (i32.const -1))))
    (if (i64.gt_u (local.get $at) (i64.extend_i32_u (global.get $top))) (then (return (i32.const -1))))
    (if (i64.ne (i64.and (local.get $at) (i64.const 7)) (i64.const 0)) (then (return (i32.const -1))))
    (local.set $p (i32.sub (i32.wrap_i64 (local.get $at)) (i32.const 8)))
    (if (i32.ne (i32.load offset=4 (local.get $p)) (call $tag (i32.wrap_i64 (local.get $at))))
      (then (return (i32.const -1))))
    (if (i64.gt_u (i64.add (local.get $at) (i64.extend_i32_u (i32.load (local.get $p)))) (i64.extend_i32_u (global.get $top)))
      (then (return (i32.const -1))))
    (local.get $p))

  (func $length32 (export "length32") (param $at i32) (result i32)
    (local $h i32)
    (local.set $h (call $header (i64.extend_i32_u (local.get $at))))
    (if (result i32) (i32.lt_s (local.get $h) (i32.const 0))
      (then (i32.const -1))
      (else (i32.load (local.get $h)))))

  ;; The address of `size` bytes at $at, all inside the blocks.
  (func $inside (param $at i64) (param $size i64) (result i32)
    (if (i32.or
          (i64.lt_u (local.get $at) (i64.const 8))
          (i64.gt_u (local.get $at) (i64.sub (i64.extend_i32_u (global.get $top)) (local.get $size))))
      (then (call $fail (i32.const 2) (local.get $at) (i32.wrap_i64 (local.get $size)))))
    (i32.wrap_i64 (local.get $at)))

  ;; Gives back the end of the last block, which the proxy allocated for text's worst case
  ;; (3 bytes of UTF-8 a UTF-16 unit) before encoding it in place.
  (func (export "shrink_last32") (param $at i32) (param $length i32)
    (i32.store (i32.sub (local.get $at) (i32.const 8)) (local.get $length))
    (global.set $top
      (i32.and
        (i32.add (i32.add (local.get $at) (select (local.get $length) (i32.const 1) (local.get $length))) (i32.const 7))
        (i32.const -8))))

  (func (export "reset")
    (global.set $epoch (i32.add (global.get $epoch) (i32.const 1)))
    (global.set $top (i32.const 8))
    (global.set $fault (i32.const 0)))
  (func (export "fault") (result i32) (global.get $fault))
  (func (export "fault_at") (result i64) (global.get $fault_at))
  (func (export "fault_size") (result i32) (global.get $fault_size))

  ;; Extism's kernel functions, with Extism's signatures.
  (func (export "alloc") (param $length i64) (result i64)
    (if (i64.gt_u (local.get $length) (i64.const 0x7fffffff))
      (then (call $fail (i32.const 1) (local.get $length) (i32.const 0))))
    (i64.extend_i32_u (call $alloc32 (i32.wrap_i64 (local.get $length)))))
  (func $length (export "length") (param $at i64) (result i64)
    (local $h i32)
    (local.set $h (call $header (local.get $at)))
    (if (result i64) (i32.lt_s (local.get $h) (i32.const 0))
      (then (i64.const 0))
      (else (i64.extend_i32_u (i32.load (local.get $h))))))
  (func (export "length_unsafe") (param $at i64) (result i64)
    (call $length (local.get $at)))
  (func (export "free") (param $at i64)
    (local $h i32)
    (local.set $h (call $header (local.get $at)))
    (if (i32.ge_s (local.get $h) (i32.const 0))
      (then (i32.store offset=4 (local.get $h) (i32.const 0)))))
  (func (export "load_u8") (param $at i64) (result i32)
    (i32.load8_u (call $inside (local.get $at) (i64.const 1))))
  (func (export "load_u64") (param $at i64) (result i64)
    (i64.load (call $inside (local.get $at) (i64.const 8))))
  (func (export "store_u8") (param $at i64) (param $value i32)
    (i32.store8 (call $inside (local.get $at) (i64.const 1)) (local.get $value)))
  (func (export "store_u64") (param $at i64) (param $value i64)
    (i64.store (call $inside (local.get $at) (i64.const 8)) (local.get $value)))
)
