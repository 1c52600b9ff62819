;; echo.wat: the Relay connector wat-echo, written by hand in WebAssembly
;; text from docs/wasm-abi.md alone: no SDK, no protobuf library, no WASI.
;; Every message is encoded and decoded here, with the field numbers and
;; wire types of that page's "Messages".
;;
;;   wat2wasm echo.wat -o connector.wasm
;;
;; One action, echo: execute answers the input, preview answers
;; {"would_return": <input>}. The config has one secret, token, which
;; relay_check_config wants present and not empty.
;;
;; Memory: 0-1023 constants, 1024- the manifest, from 8192 the heap. The
;; heap is a bump pointer that starts over at every call: the ABI calls
;; relay_alloc at most once per call, before the export, and frees the
;; response before it calls anything else, so nothing of an earlier call
;; is alive when a call begins.
(module
  (import "relay" "log" (func $log (param $level i32) (param $ptr i32) (param $len i32)))

  (memory (export "memory") 1)

  ;; ---- constants ----

  ;; The action's name, and the secret's.
  (data (i32.const 16) "echo")
  (data (i32.const 24) "token")

  ;; The preview's JSON around the input: {"would_return": ... }
  (data (i32.const 32) "{\"would_return\":")   ;; 16 bytes
  ;; The input when input_json is absent.
  (data (i32.const 52) "{}")

  ;; A log line (relay.log, level 2: debug).
  (data (i32.const 64) "wat-echo: answering the input")   ;; 29 bytes

  ;; PreviewResponse and ExecuteResponse both carry error as field 2, so
  ;; one answer serves both:
  ;;   12 12                  error (2), 18 bytes
  ;;     08 07                  code (1): ERROR_CODE_UNKNOWN_ACTION
  ;;     12 0e "no such action" message (2), 14 bytes
  (data (i32.const 128) "\12\12\08\07\12\0eno such action")   ;; 20 bytes

  ;; CheckConfigResponse, for a token that is missing or empty:
  ;;   0a 3c                  error (1), 60 bytes
  ;;     08 01                  code (1): ERROR_CODE_INVALID_INPUT
  ;;     12 1b "the secret token is missing"   message (2), 27 bytes
  ;;     22 1b                  fields (4): a FieldError of 27 bytes
  ;;       0a 06 "/token"         pointer (1)
  ;;       12 11 "must not be empty"   message (2), 17 bytes
  (data (i32.const 160)
    "\0a\3c"
    "\08\01"
    "\12\1bthe secret token is missing"
    "\22\1b"
    "\0a\06/token"
    "\12\11must not be empty")   ;; 62 bytes

  ;; The manifest, as manifest.json beside this file says it; a NUL ends it.
  (data (i32.const 1024)
    "{\"name\":\"wat-echo\",\"version\":\"1.0.0\",\"runtime\":\"wasm\",\"protocol\":1,"
    "\"title\":\"Echo, in WebAssembly text\","
    "\"description\":\"Returns its input. Written by hand in WebAssembly text from docs/wasm-abi.md alone, with no SDK.\","
    "\"config_schema\":{\"type\":\"object\",\"properties\":{\"token\":{\"type\":\"string\","
    "\"description\":\"any token but the empty one, which relay_check_config refuses\","
    "\"writeOnly\":true,\"x-relay-secret\":true}},\"required\":[\"token\"],\"additionalProperties\":false},"
    "\"actions\":[{\"name\":\"echo\",\"title\":\"Echo\","
    "\"description\":\"Returns its input; the preview shows what it would return.\","
    "\"input_schema\":{\"type\":\"object\"},\"output_schema\":{\"type\":\"object\"},"
    "\"side_effect\":\"none\",\"idempotent\":true}]}"
    "\00")

  ;; ---- the heap ----

  (global $heap_base i32 (i32.const 8192))
  (global $heap (mut i32) (i32.const 8192))
  ;; Set by relay_alloc, cleared by the export that follows: a second
  ;; relay_alloc before an export would break the ABI's promise.
  (global $allocated (mut i32) (i32.const 0))

  ;; Reserves n bytes on the heap, growing the memory as needed; 0 when
  ;; the memory cannot grow.
  (func $take (param $n i32) (result i32)
    (local $ptr i32) (local $end i32) (local $have i32)
    (local.set $ptr (global.get $heap))
    (local.set $end (i32.add (local.get $ptr) (local.get $n)))
    (if (i32.lt_u (local.get $end) (local.get $ptr)) (then (return (i32.const 0))))
    (local.set $have (i32.shl (memory.size) (i32.const 16)))
    (if (i32.gt_u (local.get $end) (local.get $have))
      (then
        (if (i32.eq
              (memory.grow (i32.shr_u (i32.add (i32.sub (local.get $end) (local.get $have)) (i32.const 0xffff)) (i32.const 16)))
              (i32.const -1))
          (then (return (i32.const 0))))))
    ;; keep blocks 8-byte aligned
    (global.set $heap (i32.and (i32.add (local.get $end) (i32.const 7)) (i32.const -8)))
    (local.get $ptr))

  ;; $take for a response: there is no way to answer without memory.
  (func $must_take (param $n i32) (result i32)
    (local $ptr i32)
    (local.set $ptr (call $take (local.get $n)))
    (if (i32.eqz (local.get $ptr)) (then unreachable))
    (local.get $ptr))

  (func $relay_alloc (export "relay_alloc") (param $n i32) (result i32)
    (if (global.get $allocated) (then unreachable))
    (global.set $allocated (i32.const 1))
    (global.set $heap (global.get $heap_base))
    (call $take (local.get $n)))

  ;; Every block dies when the next call starts.
  (func $relay_free (export "relay_free") (param $ptr i32) (param $n i32))

  ;; The start of every export. With a request, relay_alloc has reset the
  ;; heap; without one, nothing of an earlier call is alive either.
  (func $begin (param $n i32)
    (if (i32.eqz (local.get $n)) (then (global.set $heap (global.get $heap_base))))
    (global.set $allocated (i32.const 0)))

  (func $relay_abi_version (export "relay_abi_version") (result i32) (i32.const 1))

  ;; ---- the wire format ----

  ;; The i64 an export returns: pointer in the high half, length in the low.
  (func $answer (param $ptr i32) (param $n i32) (result i64)
    (i64.or
      (i64.shl (i64.extend_i32_u (local.get $ptr)) (i64.const 32))
      (i64.extend_i32_u (local.get $n))))

  ;; Reads a varint at $p, which must end before $end; returns its low 32
  ;; bits and the address after it.
  (func $read_varint (param $p i32) (param $end i32) (result i32 i32)
    (local $v i32) (local $shift i32) (local $b i32)
    (loop $more
      (if (i32.ge_u (local.get $p) (local.get $end)) (then unreachable))
      (local.set $b (i32.load8_u (local.get $p)))
      (local.set $p (i32.add (local.get $p) (i32.const 1)))
      ;; i32.shl counts modulo 32: bits past the 32nd are dropped here
      (if (i32.lt_u (local.get $shift) (i32.const 32))
        (then
          (local.set $v (i32.or (local.get $v)
            (i32.shl (i32.and (local.get $b) (i32.const 0x7f)) (local.get $shift))))))
      (local.set $shift (i32.add (local.get $shift) (i32.const 7)))
      (br_if $more (i32.and (local.get $b) (i32.const 0x80))))
    (local.get $v) (local.get $p))

  ;; Reads the field at $p (before $end): its key, its value and the
  ;; address after it. For wire type 2 the value is the payload's address
  ;; and $len its length; for wire type 0 the value is the varint's low 32
  ;; bits; wire types 1 and 5 are skipped (value 0); others trap.
  (func $field (param $p i32) (param $end i32) (result i32 i32 i32 i32)
    (local $key i32) (local $value i32) (local $len i32) (local $type i32)
    (call $read_varint (local.get $p) (local.get $end))
    (local.set $p)
    (local.set $key)
    (local.set $type (i32.and (local.get $key) (i32.const 7)))
    (block $read
      (if (i32.eqz (local.get $type))
        (then
          (call $read_varint (local.get $p) (local.get $end))
          (local.set $p)
          (local.set $value)
          (br $read)))
      (if (i32.eq (local.get $type) (i32.const 2))
        (then
          (call $read_varint (local.get $p) (local.get $end))
          (local.set $p)
          (local.set $len)
          (local.set $value (local.get $p))
          (local.set $p (i32.add (local.get $p) (local.get $len)))
          ;; a length past the message, or one that wraps, is malformed
          (if (i32.lt_u (local.get $p) (local.get $value)) (then unreachable))
          (br $read)))
      (if (i32.eq (local.get $type) (i32.const 1))
        (then (local.set $p (i32.add (local.get $p) (i32.const 8))) (br $read)))
      (if (i32.eq (local.get $type) (i32.const 5))
        (then (local.set $p (i32.add (local.get $p) (i32.const 4))) (br $read)))
      unreachable)
    (if (i32.gt_u (local.get $p) (local.get $end)) (then unreachable))
    (local.get $key) (local.get $value) (local.get $len) (local.get $p))

  (func $varint_size (param $v i32) (result i32)
    (local $n i32)
    (local.set $n (i32.const 1))
    (block $done
      (loop $more
        (br_if $done (i32.lt_u (local.get $v) (i32.const 0x80)))
        (local.set $v (i32.shr_u (local.get $v) (i32.const 7)))
        (local.set $n (i32.add (local.get $n) (i32.const 1)))
        (br $more)))
    (local.get $n))

  ;; Writes $v as a varint at $dst; returns the address after it.
  (func $write_varint (param $dst i32) (param $v i32) (result i32)
    (block $done
      (loop $more
        (br_if $done (i32.lt_u (local.get $v) (i32.const 0x80)))
        (i32.store8 (local.get $dst) (i32.or (local.get $v) (i32.const 0x80)))
        (local.set $v (i32.shr_u (local.get $v) (i32.const 7)))
        (local.set $dst (i32.add (local.get $dst) (i32.const 1)))
        (br $more)))
    (i32.store8 (local.get $dst) (local.get $v))
    (i32.add (local.get $dst) (i32.const 1)))

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

;; A message of one length-delimited field: $key, then [$src, $src+$n),
  ;; in a new block, as an export's answer.
  (func $bytes_message (param $key i32) (param $src i32) (param $n i32) (result i64)
    (local $size i32) (local $out i32) (local $p i32)
    (local.set $size (i32.add (i32.add (i32.const 1) (call $varint_size (local.get $n))) (local.get $n)))
    (local.set $out (call $must_take (local.get $size)))
    (i32.store8 (local.get $out) (local.get $key))
    (local.set $p (call $write_varint (i32.add (local.get $out) (i32.const 1)) (local.get $n)))
    (memory.copy (local.get $p) (local.get $src) (local.get $n))
    (call $answer (local.get $out) (local.get $size)))

  ;; ---- describe ----

  (func $strlen (param $p i32) (result i32)
    (local $n i32)
    (block $done
      (loop $more
        (br_if $done (i32.eqz (i32.load8_u (i32.add (local.get $p) (local.get $n)))))
        (local.set $n (i32.add (local.get $n) (i32.const 1)))
        (br $more)))
    (local.get $n))

  ;; DescribeResponse{manifest_json (1): the manifest}. The request is
  ;; always empty: (0, 0).
  (func $relay_describe (export "relay_describe") (param $ptr i32) (param $n i32) (result i64)
    (call $begin (local.get $n))
    (call $bytes_message (i32.const 0x0a) (i32.const 1024) (call $strlen (i32.const 1024))))

  ;; ---- check_config ----

  ;; The length of the secret "token" in the Connection at [$p, $end); -1
  ;; when there is none. Each secrets (2) field is one map entry: the
  ;; name as its field 1, the value as its field 2, either left out when
  ;; empty.
  (func $token_length (param $p i32) (param $end i32) (result i32)
    (local $key i32) (local $value i32) (local $len i32)
    (local $q i32) (local $entry_end i32)
    (local $ekey i32) (local $evalue i32) (local $elen i32)
    (local $is_token i32) (local $secret_len i32) (local $found i32)
    (local.set $found (i32.const -1))
    (block $done
      (loop $fields
        (br_if $done (i32.ge_u (local.get $p) (local.get $end)))
        (call $field (local.get $p) (local.get $end))
        (local.set $p) (local.set $len) (local.set $value) (local.set $key)
        (if (i32.eq (local.get $key) (i32.const 0x12))
          (then
            (local.set $q (local.get $value))
            (local.set $entry_end (i32.add (local.get $value) (local.get $len)))
            (local.set $is_token (i32.const 0))
            (local.set $secret_len (i32.const 0))
            (block $entry_done
              (loop $entry
                (br_if $entry_done (i32.ge_u (local.get $q) (local.get $entry_end)))
                (call $field (local.get $q) (local.get $entry_end))
                (local.set $q) (local.set $elen) (local.set $evalue) (local.set $ekey)
                (if (i32.eq (local.get $ekey) (i32.const 0x0a))
                  (then (local.set $is_token
                    (call $equal (local.get $evalue) (local.get $elen) (i32.const 24) (i32.const 5)))))
                (if (i32.eq (local.get $ekey) (i32.const 0x12))
                  (then (local.set $secret_len (local.get $elen))))
                (br $entry)))
            (if (local.get $is_token) (then (local.set $found (local.get $secret_len))))))
        (br $fields)))
    (local.get $found))

  ;; CheckConfigRequest{connection (1)}: good when the token is there and
  ;; not empty (the empty CheckConfigResponse), INVALID_INPUT otherwise.
  (func $relay_check_config (export "relay_check_config") (param $ptr i32) (param $n i32) (result i64)
    (local $end i32) (local $key i32) (local $value i32) (local $len i32)
    (local $conn i32) (local $conn_len i32)
    (call $begin (local.get $n))
    (local.set $end (i32.add (local.get $ptr) (local.get $n)))
    (block $done
      (loop $fields
        (br_if $done (i32.ge_u (local.get $ptr) (local.get $end)))
        (call $field (local.get $ptr) (local.get $end))
        (local.set $ptr) (local.set $len) (local.set $value) (local.set $key)
        (if (i32.eq (local.get $key) (i32.const 0x0a))
          (then (local.set $conn (local.get $value)) (local.set $conn_len (local.get $len))))
        (br $fields)))
    (if (i32.gt_s
          (call $token_length (local.get $conn) (i32.add (local.get $conn) (local.get $conn_len)))
          (i32.const 0))
      (then (return (i64.const 0))))
    (call $answer (i32.const 160) (i32.const 62)))

  ;; ---- preview and execute ----

  ;; The action (1) and input_json (2) of the ActionRequest at [$p, $p+$n):
  ;; action address and length, input address and length. An absent or
  ;; empty input is {}.
  (func $action_request (param $p i32) (param $n i32) (result i32 i32 i32 i32)
    (local $end i32) (local $key i32) (local $value i32) (local $len i32)
    (local $action i32) (local $action_len i32) (local $input i32) (local $input_len i32)
    (local.set $end (i32.add (local.get $p) (local.get $n)))
    (block $done
      (loop $fields
        (br_if $done (i32.ge_u (local.get $p) (local.get $end)))
        (call $field (local.get $p) (local.get $end))
        (local.set $p) (local.set $len) (local.set $value) (local.set $key)
        (if (i32.eq (local.get $key) (i32.const 0x0a))
          (then (local.set $action (local.get $value)) (local.set $action_len (local.get $len))))
        (if (i32.eq (local.get $key) (i32.const 0x12))
          (then (local.set $input (local.get $value)) (local.set $input_len (local.get $len))))
        (br $fields)))
    (if (i32.eqz (local.get $input_len))
      (then (local.set $input (i32.const 52)) (local.set $input_len (i32.const 2))))
    (local.get $action) (local.get $action_len) (local.get $input) (local.get $input_len))

  ;; PreviewResponse{preview_json (1): {"would_return":<input>}}.
  (func $relay_preview (export "relay_preview") (param $ptr i32) (param $n i32) (result i64)
    (local $action i32) (local $action_len i32) (local $input i32) (local $input_len i32)
    (local $json_len i32) (local $size i32) (local $out i32) (local $p i32)
    (call $begin (local.get $n))
    (call $action_request (local.get $ptr) (local.get $n))
    (local.set $input_len) (local.set $input) (local.set $action_len) (local.set $action)
    (if (i32.eqz (call $equal (local.get $action) (local.get $action_len) (i32.const 16) (i32.const 4)))
      (then (return (call $answer (i32.const 128) (i32.const 20)))))
    (local.set $json_len (i32.add (local.get $input_len) (i32.const 17)))
    (local.set $size (i32.add (i32.add (i32.const 1) (call $varint_size (local.get $json_len))) (local.get $json_len)))
    (local.set $out (call $must_take (local.get $size)))
    (i32.store8 (local.get $out) (i32.const 0x0a))
    (local.set $p (call $write_varint (i32.add (local.get $out) (i32.const 1)) (local.get $json_len)))
    (memory.copy (local.get $p) (i32.const 32) (i32.const 16))
    (local.set $p (i32.add (local.get $p) (i32.const 16)))
    (memory.copy (local.get $p) (local.get $input) (local.get $input_len))
    (i32.store8 (i32.add (local.get $p) (local.get $input_len)) (i32.const 0x7d)) ;; }
    (call $answer (local.get $out) (local.get $size)))

  ;; ExecuteResponse{output_json (1): the input}.
  (func $relay_execute (export "relay_execute") (param $ptr i32) (param $n i32) (result i64)
    (local $action i32) (local $action_len i32) (local $input i32) (local $input_len i32)
    (call $begin (local.get $n))
    (call $action_request (local.get $ptr) (local.get $n))
    (local.set $input_len) (local.set $input) (local.set $action_len) (local.set $action)
    (if (i32.eqz (call $equal (local.get $action) (local.get $action_len) (i32.const 16) (i32.const 4)))
      (then (return (call $answer (i32.const 128) (i32.const 20)))))
    (call $log (i32.const 2) (i32.const 64) (i32.const 29))
    (call $bytes_message (i32.const 0x0a) (local.get $input) (local.get $input_len)))
)
