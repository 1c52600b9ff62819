;; misbehave.wat: a guest for the host's own tests, written by hand like
;; echo.wat (whose allocator and protobuf helpers it repeats). Its actions
;; misbehave on purpose; the host must contain each. The action is picked
;; by the first byte of its name:
;;   echo   answer the input (preview and execute)
;;   loop   loop forever
;;   recurse  recurse without a loop, for ever in practice (fib(90))
;;   trap   unreachable
;;   grow   grow memory until memory.grow fails, then trap
;;   http   input_json is an encoded HttpRequest; relay.http_request it and
;;          answer the encoded HttpResponse as output_json
;;   busy   trap if another call is inside this instance, else spin a while
;;          and answer the input
;;   print  write a line to stdout and one to relay.log, answer the input
;;   xit    proc_exit(3)
;;   kaboom write "panic: boom" to stderr, as Go's runtime does, then trap
;;   zbig   answer a response over the 4 MiB limit
;;   oob    answer a response outside memory
;;   dbad   answer bytes that do not decode
;;   sleep  poll_oneoff on a clock for an hour
(module
  (import "relay" "http_request" (func $http_request (param i32 i32) (result i32)))
  (import "relay" "result_read" (func $result_read (param i32 i32) (result i32)))
  (import "relay" "log" (func $log (param i32 i32 i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))
  (import "wasi_snapshot_preview1" "poll_oneoff" (func $poll_oneoff (param i32 i32 i32 i32) (result i32)))

  (memory (export "memory") 1)

  ;; the manifest it describes: the one its catalog folder holds in the
  ;; core/wasmrt tests, which check that the two agree
  (data (i32.const 1024) "{\"name\":\"misbehave\",\"version\":\"0.0.1\",\"runtime\":\"wasm\",\"protocol\":1,\"title\":\"Misbehave\",\"egress\":[\"localhost\",\"api.example.com\"],\"actions\":[{\"name\":\"echo\",\"title\":\"Echo\",\"input_schema\":{\"type\":\"object\"},\"output_schema\":true,\"side_effect\":\"none\"},{\"name\":\"loop\",\"title\":\"Loop\",\"input_schema\":{\"type\":\"object\"},\"output_schema\":true,\"side_effect\":\"none\",\"timeout_seconds\":1},{\"name\":\"trap\",\"title\":\"Trap\",\"input_schema\":{\"type\":\"object\"},\"output_schema\":true,\"side_effect\":\"none\"},{\"name\":\"grow\",\"title\":\"Grow\",\"input_schema\":{\"type\":\"object\"},\"output_schema\":true,\"side_effect\":\"none\"},{\"name\":\"busy\",\"title\":\"Busy\",\"input_schema\":{\"type\":\"object\"},\"output_schema\":true,\"side_effect\":\"none\"},{\"name\":\"http\",\"title\":\"HTTP\",\"input_schema\":{\"type\":\"object\"},\"output_schema\":true,\"side_effect\":\"write\"}]}")
  (global $manifest i32 (i32.const 1024))
  (global $manifest_len i32 (i32.const 798))

  (data (i32.const 768) "hello from stdout\n")
  (data (i32.const 800) "hello from relay.log")
  (data (i32.const 864) "panic: boom\n\ngoroutine 1 [running]:\n")
  ;; a response that does not decode: a key with wire type 7
  (data (i32.const 832) "\0f\0f\0f\0f")

  ;; set while a call runs
  (global $busy (mut i32) (i32.const 0))

  (func (export "_initialize"))
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

  (func $fib (param $n i64) (result i64)
    (if (result i64) (i64.lt_u (local.get $n) (i64.const 2))
      (then (local.get $n))
      (else (i64.add (call $fib (i64.sub (local.get $n) (i64.const 1)))
                     (call $fib (i64.sub (local.get $n) (i64.const 2)))))))

  (func $action (param $ptr i32) (param $n i32) (result i64)
    (local $action i32) (local $action_len i32) (local $input i32) (local $input_len i32)
    (local $first i32) (local $i i32) (local $len i32) (local $buf i32) (local $out i64)
    (call $parse_action_request (local.get $ptr) (local.get $n))
    (local.set $input_len)
    (local.set $input)
    (local.set $action_len)
    (local.set $action)
    (if (local.get $action_len) (then (local.set $first (i32.load8_u (local.get $action)))))
    ;; loop
    (if (i32.eq (local.get $first) (i32.const 0x6c)) (then (loop $forever (br $forever))))
    ;; recurse
    (if (i32.eq (local.get $first) (i32.const 0x72)) (then (drop (call $fib (i64.const 90)))))
    ;; trap
    (if (i32.eq (local.get $first) (i32.const 0x74)) (then unreachable))
    ;; grow
    (if (i32.eq (local.get $first) (i32.const 0x67))
      (then
        (loop $more (br_if $more (i32.ge_s (memory.grow (i32.const 16)) (i32.const 0))))
        unreachable))
    ;; kaboom: iovec {864, 36} at 48
    (if (i32.eq (local.get $first) (i32.const 0x6b))
      (then
        (i32.store (i32.const 48) (i32.const 864))
        (i32.store (i32.const 52) (i32.const 36))
        (drop (call $fd_write (i32.const 2) (i32.const 48) (i32.const 1) (i32.const 56)))
        unreachable))
    ;; xit
    (if (i32.eq (local.get $first) (i32.const 0x78)) (then (call $proc_exit (i32.const 3))))
    ;; zbig: 5 MiB at 0, inside memory once grown
    (if (i32.eq (local.get $first) (i32.const 0x7a))
      (then
        (drop (memory.grow (i32.const 80)))
        (return (call $answer (i32.const 0) (i32.const 0x500000)))))
    ;; oob
    (if (i32.eq (local.get $first) (i32.const 0x6f))
      (then (return (call $answer (i32.const 0xffff0000) (i32.const 100)))))
    ;; dbad
    (if (i32.eq (local.get $first) (i32.const 0x64))
      (then (return (call $answer (i32.const 832) (i32.const 4)))))
    ;; sleep: one clock subscription (48 bytes at 64): userdata 0, tag 0
    ;; (clock), clock id 1 (monotonic) at 16, timeout at 24 in ns, relative
    (if (i32.eq (local.get $first) (i32.const 0x73))
      (then
        (i64.store (i32.const 64) (i64.const 0))
        (i32.store8 (i32.const 72) (i32.const 0))
        (i32.store (i32.const 80) (i32.const 1))
        (i64.store (i32.const 88) (i64.const 3600000000000))
        (i64.store (i32.const 96) (i64.const 0))
        (i32.store16 (i32.const 104) (i32.const 0))
        (drop (call $poll_oneoff (i32.const 64) (i32.const 128) (i32.const 1) (i32.const 160)))))
    ;; busy
    (if (i32.eq (local.get $first) (i32.const 0x62))
      (then
        (if (global.get $busy) (then unreachable))
        (global.set $busy (i32.const 1))
        (local.set $i (i32.const 200000))
        (loop $spin
          (local.set $i (i32.sub (local.get $i) (i32.const 1)))
          (br_if $spin (i32.gt_s (local.get $i) (i32.const 0))))
        (global.set $busy (i32.const 0))))
    ;; print: iovec {768, 18} at 48, bytes written at 56
    (if (i32.eq (local.get $first) (i32.const 0x70))
      (then
        (i32.store (i32.const 48) (i32.const 768))
        (i32.store (i32.const 52) (i32.const 18))
        (drop (call $fd_write (i32.const 1) (i32.const 48) (i32.const 1) (i32.const 56)))
        (call $log (i32.const 4) (i32.const 800) (i32.const 20))))
    ;; http
    (if (i32.eq (local.get $first) (i32.const 0x68))
      (then
        (local.set $len (call $http_request (local.get $input) (local.get $input_len)))
        (if (i32.lt_s (local.get $len) (i32.const 0)) (then unreachable))
        (local.set $buf (call $alloc (i32.add (local.get $len) (i32.const 1))))
        (if (i32.ne (call $result_read (local.get $buf) (local.get $len)) (local.get $len)) (then unreachable))
        ;; nothing is pending any more
        (if (i32.ne (call $result_read (local.get $buf) (local.get $len)) (i32.const -1)) (then unreachable))
        (local.set $input (local.get $buf))
        (local.set $input_len (local.get $len))))
    (local.set $out (call $bytes_message (i32.const 0x0a) (local.get $input) (local.get $input_len)))
    ;; the request block and the HTTP result are the guest's to free
    (if (local.get $n) (then (call $free (local.get $ptr) (local.get $n))))
    (if (local.get $buf) (then (call $free (local.get $buf) (local.get $len))))
    (local.get $out))

  (func (export "relay_describe") (param $ptr i32) (param $n i32) (result i64)
    (call $bytes_message (i32.const 0x0a) (global.get $manifest) (global.get $manifest_len)))

  (func (export "relay_check_config") (param $ptr i32) (param $n i32) (result i64)
    (i64.const 0))

  (func (export "relay_preview") (param $ptr i32) (param $n i32) (result i64)
    (call $action (local.get $ptr) (local.get $n)))

  (func (export "relay_execute") (param $ptr i32) (param $n i32) (result i64)
    (call $action (local.get $ptr) (local.get $n)))
)
