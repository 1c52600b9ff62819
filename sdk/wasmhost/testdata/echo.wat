;; echo.wat: a Relay WASM connector written by hand, with no SDK and no
;; protobuf library, against docs/wasm-abi.md alone. It proves that the ABI
;; is language-neutral: Relay's tests build it with wat2wasm (Debian's wabt)
;; and run the conformance kit on it.
;;
;; One action, "echo": preview and execute answer the input as it came.
;; Messages are encoded and decoded by hand (protocol buffers wire format:
;; https://protobuf.dev/programming-guides/encoding/).
(module
  (memory (export "memory") 1)

  ;; Constant responses, encoded by hand.
  ;; DescribeResponse.manifest_json (field 1) is built at run time from the
  ;; manifest below, since its length is a varint.
  (data (i32.const 1024) "{\"name\":\"watecho\",\"version\":\"1.0.0\",\"runtime\":\"wasm\",\"protocol\":1,\"title\":\"Echo in WebAssembly text\",\"description\":\"Echoes its input. Written by hand in WAT, with no SDK, to show that the Relay WASM ABI is language-neutral.\",\"actions\":[{\"name\":\"echo\",\"title\":\"Echo\",\"description\":\"Returns its input.\",\"input_schema\":{\"type\":\"object\"},\"output_schema\":{\"type\":\"object\"},\"side_effect\":\"none\",\"idempotent\":true}]}")
  (global $manifest i32 (i32.const 1024))
  (global $manifest_len i32 (i32.const 409))

  ;; The action's name.
  (data (i32.const 512) "echo")

  ;; {Preview,Execute}Response{error: Error{code: UNKNOWN_ACTION (7),
  ;; message: "unknown action"}}: field 2 of the response, 18 bytes long.
  (data (i32.const 256) "\12\12\08\07\12\0eunknown action")
  (global $unknown i32 (i32.const 256))
  (global $unknown_len i32 (i32.const 20))

  ;; {Preview,Execute}Response{error: Error{code: INVALID_INPUT (1),
  ;; message: "...", fields: [FieldError{pointer: "", message: "..."}]}}
  (data (i32.const 320) "\12\38\08\01\12\1fthe input must be a JSON object\22\13\12\11must be an object")
  (global $invalid i32 (i32.const 320))
  (global $invalid_len i32 (i32.const 58))

  ;; A bump allocator: blocks are handed out from $heap up; once every
  ;; block is freed, the next allocation starts over at $heap_base.
  (global $heap_base i32 (i32.const 4096))
  (global $heap (mut i32) (i32.const 4096))
  (global $live (mut i32) (i32.const 0))

  (func (export "relay_abi_version") (result i32) (i32.const 1))

  (func $alloc (param $n i32) (result i32)
    (local $ptr i32) (local $end i32) (local $have i32)
    (if (i32.eqz (global.get $live)) (then (global.set $heap (global.get $heap_base))))
    (local.set $ptr (global.get $heap))
    ;; 8-byte aligned end
    (local.set $end (i32.and (i32.add (i32.add (local.get $ptr) (local.get $n)) (i32.const 7)) (i32.const -8)))
    (if (i32.lt_u (local.get $end) (local.get $ptr)) (then (return (i32.const 0))))
    (local.set $have (i32.shl (memory.size) (i32.const 16)))
    (if (i32.gt_u (local.get $end) (local.get $have))
      (then
        (if (i32.lt_s
              (memory.grow (i32.shr_u (i32.add (i32.sub (local.get $end) (local.get $have)) (i32.const 65535)) (i32.const 16)))
              (i32.const 0))
          (then (return (i32.const 0))))))
    (global.set $heap (local.get $end))
    (global.set $live (i32.add (global.get $live) (i32.const 1)))
    (local.get $ptr))

  (func (export "relay_alloc") (param $n i32) (result i32)
    (if (i32.eqz (local.get $n)) (then (return (i32.const 0))))
    (call $alloc (local.get $n)))

  ;; Only heap blocks count; a constant response lives in the data segment.
  (func $free (export "relay_free") (param $ptr i32) (param $n i32)
    (if (i32.and (i32.ge_u (local.get $ptr) (global.get $heap_base)) (i32.gt_u (global.get $live) (i32.const 0)))
      (then (global.set $live (i32.sub (global.get $live) (i32.const 1))))))

  ;; The i64 an export returns: pointer high, length low.
  (func $answer (param $ptr i32) (param $n i32) (result i64)
    (i64.or (i64.shl (i64.extend_i32_u (local.get $ptr)) (i64.const 32)) (i64.extend_i32_u (local.get $n))))

  (func $varint_size (param $v i32) (result i32)
    (local $n i32)
    (local.set $n (i32.const 1))
    (block $done
      (loop $more
        (br_if $done (i32.lt_u (local.get $v) (i32.const 128)))
        (local.set $v (i32.shr_u (local.get $v) (i32.const 7)))
        (local.set $n (i32.add (local.get $n) (i32.const 1)))
        (br $more)))
    (local.get $n))

  ;; Writes $v as a varint at $dst; returns the address after it.
  (func $write_varint (param $dst i32) (param $v i32) (result i32)
    (block $done
      (loop $more
        (if (i32.lt_u (local.get $v) (i32.const 128))
          (then
            (i32.store8 (local.get $dst) (local.get $v))
            (br $done)))
        (i32.store8 (local.get $dst) (i32.or (i32.and (local.get $v) (i32.const 127)) (i32.const 128)))
        (local.set $v (i32.shr_u (local.get $v) (i32.const 7)))
        (local.set $dst (i32.add (local.get $dst) (i32.const 1)))
        (br $more)))
    (i32.add (local.get $dst) (i32.const 1)))

  (func $copy (param $dst i32) (param $src i32) (param $n i32)
    (block $done
      (loop $more
        (br_if $done (i32.eqz (local.get $n)))
        (i32.store8 (local.get $dst) (i32.load8_u (local.get $src)))
        (local.set $dst (i32.add (local.get $dst) (i32.const 1)))
        (local.set $src (i32.add (local.get $src) (i32.const 1)))
        (local.set $n (i32.sub (local.get $n) (i32.const 1)))
        (br $more))))

  ;; A message with one length-delimited field (key $key) holding
  ;; [$src, $src+$n), in a new block: the export's answer.
  (func $bytes_message (param $key i32) (param $src i32) (param $n i32) (result i64)
    (local $size i32) (local $ptr i32) (local $p i32)
    (local.set $size (i32.add (i32.add (i32.const 1) (call $varint_size (local.get $n))) (local.get $n)))
    (local.set $ptr (call $alloc (local.get $size)))
    (if (i32.eqz (local.get $ptr)) (then unreachable))
    (i32.store8 (local.get $ptr) (local.get $key))
    (local.set $p (call $write_varint (i32.add (local.get $ptr) (i32.const 1)) (local.get $n)))
    (call $copy (local.get $p) (local.get $src) (local.get $n))
    (call $answer (local.get $ptr) (local.get $size)))

  ;; Reads a varint at $p, below $end; returns the value and the address
  ;; after it. A varint that runs past $end traps.
  (func $read_varint (param $p i32) (param $end i32) (result i32 i32)
    (local $v i32) (local $shift i32) (local $b i32)
    (loop $more
      (if (i32.ge_u (local.get $p) (local.get $end)) (then unreachable))
      (local.set $b (i32.load8_u (local.get $p)))
      (local.set $p (i32.add (local.get $p) (i32.const 1)))
      (if (i32.lt_u (local.get $shift) (i32.const 32))
        (then (local.set $v (i32.or (local.get $v) (i32.shl (i32.and (local.get $b) (i32.const 127)) (local.get $shift))))))
      (local.set $shift (i32.add (local.get $shift) (i32.const 7)))
      (br_if $more (i32.and (local.get $b) (i32.const 128))))
    (local.get $v) (local.get $p))

  ;; The action (field 1) and input_json (field 2) of an ActionRequest at
  ;; [$p, $p+$n): action pointer, action length, input pointer, input
  ;; length. Other fields are skipped; a malformed message traps.
  (func $parse_action_request (param $p i32) (param $n i32) (result i32 i32 i32 i32)
    (local $end i32) (local $key i32) (local $len i32)
    (local $action i32) (local $action_len i32) (local $input i32) (local $input_len i32)
    (local.set $end (i32.add (local.get $p) (local.get $n)))
    (block $done
      (loop $field
        (br_if $done (i32.ge_u (local.get $p) (local.get $end)))
        (call $read_varint (local.get $p) (local.get $end))
        (local.set $p)
        (local.set $key)
        (block $skipped
          ;; wire type 0: varint
          (if (i32.eqz (i32.and (local.get $key) (i32.const 7)))
            (then
              (call $read_varint (local.get $p) (local.get $end))
              (local.set $p)
              (drop)
              (br $skipped)))
          ;; wire type 1: 8 bytes; 5: 4 bytes
          (if (i32.eq (i32.and (local.get $key) (i32.const 7)) (i32.const 1))
            (then (local.set $p (i32.add (local.get $p) (i32.const 8))) (br $skipped)))
          (if (i32.eq (i32.and (local.get $key) (i32.const 7)) (i32.const 5))
            (then (local.set $p (i32.add (local.get $p) (i32.const 4))) (br $skipped)))
          ;; anything else but wire type 2 (length-delimited) is malformed
          (if (i32.ne (i32.and (local.get $key) (i32.const 7)) (i32.const 2)) (then unreachable))
          (call $read_varint (local.get $p) (local.get $end))
          (local.set $p)
          (local.set $len)
          (if (i32.gt_u (local.get $len) (i32.sub (local.get $end) (local.get $p))) (then unreachable))
          (if (i32.eq (local.get $key) (i32.const 0x0a))
            (then (local.set $action (local.get $p)) (local.set $action_len (local.get $len))))
          (if (i32.eq (local.get $key) (i32.const 0x12))
            (then (local.set $input (local.get $p)) (local.set $input_len (local.get $len))))
          (local.set $p (i32.add (local.get $p) (local.get $len))))
        (br $field)))
    (if (i32.gt_u (local.get $p) (local.get $end)) (then unreachable))
    (local.get $action) (local.get $action_len) (local.get $input) (local.get $input_len))

  (func $equal (param $a i32) (param $a_len i32) (param $b i32) (param $b_len i32) (result i32)
    (if (i32.ne (local.get $a_len) (local.get $b_len)) (then (return (i32.const 0))))
    (block $done
      (loop $more
        (br_if $done (i32.eqz (local.get $a_len)))
        (if (i32.ne (i32.load8_u (local.get $a)) (i32.load8_u (local.get $b))) (then (return (i32.const 0))))
        (local.set $a (i32.add (local.get $a) (i32.const 1)))
        (local.set $b (i32.add (local.get $b) (i32.const 1)))
        (local.set $a_len (i32.sub (local.get $a_len) (i32.const 1)))
        (br $more)))
    (i32.const 1))

  ;; Whether the JSON at [$p, $p+$n) is an object: its first byte that is
  ;; not white space is "{". (The host has already checked that it is JSON.)
  (func $is_object (param $p i32) (param $n i32) (result i32)
    (local $b i32)
    (block $done
      (loop $more
        (br_if $done (i32.eqz (local.get $n)))
        (local.set $b (i32.load8_u (local.get $p)))
        (if (i32.eqz (i32.or (i32.or (i32.eq (local.get $b) (i32.const 0x20)) (i32.eq (local.get $b) (i32.const 0x09)))
                             (i32.or (i32.eq (local.get $b) (i32.const 0x0a)) (i32.eq (local.get $b) (i32.const 0x0d)))))
          (then (return (i32.eq (local.get $b) (i32.const 0x7b)))))
        (local.set $p (i32.add (local.get $p) (i32.const 1)))
        (local.set $n (i32.sub (local.get $n) (i32.const 1)))
        (br $more)))
    (i32.const 0))

  ;; Preview and execute: PreviewResponse.preview_json and
  ;; ExecuteResponse.output_json are both field 1, error both field 2, so
  ;; one answer serves both.
  (func $echo (param $ptr i32) (param $n i32) (result i64)
    (local $action i32) (local $action_len i32) (local $input i32) (local $input_len i32)
    (local $out i64)
    (call $parse_action_request (local.get $ptr) (local.get $n))
    (local.set $input_len)
    (local.set $input)
    (local.set $action_len)
    (local.set $action)
    (block $answered
      (if (i32.eqz (call $equal (local.get $action) (local.get $action_len) (i32.const 512) (i32.const 4)))
        (then
          (local.set $out (call $answer (global.get $unknown) (global.get $unknown_len)))
          (br $answered)))
      (if (i32.eqz (call $is_object (local.get $input) (local.get $input_len)))
        (then
          (local.set $out (call $answer (global.get $invalid) (global.get $invalid_len)))
          (br $answered)))
      (local.set $out (call $bytes_message (i32.const 0x0a) (local.get $input) (local.get $input_len))))
    ;; The request block is the guest's: free it now that it is read.
    (if (local.get $n) (then (call $free (local.get $ptr) (local.get $n))))
    (local.get $out))

  (func (export "relay_describe") (param $ptr i32) (param $n i32) (result i64)
    (if (local.get $n) (then (call $free (local.get $ptr) (local.get $n))))
    (call $bytes_message (i32.const 0x0a) (global.get $manifest) (global.get $manifest_len)))

  ;; Every config is good: the empty CheckConfigResponse.
  (func (export "relay_check_config") (param $ptr i32) (param $n i32) (result i64)
    (if (local.get $n) (then (call $free (local.get $ptr) (local.get $n))))
    (i64.const 0))

  (func (export "relay_preview") (param $ptr i32) (param $n i32) (result i64)
    (call $echo (local.get $ptr) (local.get $n)))

  (func (export "relay_execute") (param $ptr i32) (param $n i32) (result i64)
    (call $echo (local.get $ptr) (local.get $n)))
)
