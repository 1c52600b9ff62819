// Package docs holds checks that the guides still say what the code does,
// where a guide restates a contract that lives in code.
package docs_test

import (
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/relayhq/relay/sdk/protocol/connectorv1"
)

// wasm-abi.md restates every field of the protocol's messages, and the
// error codes, so that a guest in another language needs nothing but that
// page: both tables must match sdk/protocol/connector.proto, field for
// field, and miss none.
func TestWASMABIMessages(t *testing.T) {
	doc := section(t, "wasm-abi.md", "### Fields")
	file := connectorv1.File_connector_proto

	// A guest reads and writes the messages of the Connector service's
	// calls, and those of Host.Fetch through relay.http_request; not
	// OpenHost or Host.Dial, which only a native plugin uses (protocol.md).
	want := map[string]string{} // "Message field" -> the row's cells, as they should read
	done := map[protoreflect.FullName]bool{}
	var message func(protoreflect.MessageDescriptor)
	message = func(m protoreflect.MessageDescriptor) {
		if done[m.FullName()] {
			return
		}
		done[m.FullName()] = true
		name := strings.TrimPrefix(string(m.FullName()), string(file.Package())+".")
		if m.Fields().Len() == 0 {
			want[name] = "| `" + name + "` | | (no fields) | | | |"
		}
		for j := range m.Fields().Len() {
			f := m.Fields().Get(j)
			wire := wireType(f.Kind())
			want[name+" "+string(f.Name())] = fmt.Sprintf("| `%s` | %d | `%s` | %s | %d | `0x%02x` |",
				name, f.Number(), f.Name(), typeName(f), wire, uint64(f.Number())<<3|uint64(wire))
			if f.Message() != nil {
				message(f.Message())
			}
		}
	}
	for _, m := range []struct{ service, method string }{
		{"Connector", "Describe"}, {"Connector", "CheckConfig"}, {"Connector", "Preview"}, {"Connector", "Execute"},
		{"Host", "Fetch"},
	} {
		md := file.Services().ByName(protoreflect.Name(m.service)).Methods().ByName(protoreflect.Name(m.method))
		if md == nil {
			t.Fatalf("connector.proto has no %s.%s", m.service, m.method)
		}
		message(md.Input())
		message(md.Output())
	}

	rows := regexp.MustCompile("(?m)^\\| `([A-Za-z.]+)` \\|[^|]*\\| (?:`([a-z_]+)`|\\(no fields\\)) \\|.*$").FindAllStringSubmatch(doc, -1)
	seen := map[string]bool{}
	for _, r := range rows {
		key := strings.TrimSpace(r[1] + " " + r[2])
		w, ok := want[key]
		switch {
		case !ok:
			t.Errorf("wasm-abi.md lists %s, which connector.proto does not have", key)
		case r[0] != w:
			t.Errorf("wasm-abi.md's row for %s is\n\t%s\nconnector.proto says\n\t%s", key, r[0], w)
		}
		seen[key] = true
	}
	for key, w := range want {
		if !seen[key] {
			t.Errorf("wasm-abi.md does not list %s:\n\t%s", key, w)
		}
	}

	codes := regexp.MustCompile("(?m)^\\| ([0-9]+) \\| `(ERROR_CODE_[A-Z_]+)` \\|").FindAllStringSubmatch(doc, -1)
	enum := file.Enums().ByName("ErrorCode").Values()
	if len(codes) != enum.Len() {
		t.Errorf("wasm-abi.md lists %d error codes; connector.proto has %d", len(codes), enum.Len())
	}
	for _, c := range codes {
		n, _ := strconv.Atoi(c[1])
		if v := enum.ByName(protoreflect.Name(c[2])); v == nil || int(v.Number()) != n {
			t.Errorf("wasm-abi.md says %s is %d; connector.proto does not", c[2], n)
		}
	}
}

// wireType is the protocol buffers wire type of a field of kind k.
func wireType(k protoreflect.Kind) int {
	switch k {
	case protoreflect.StringKind, protoreflect.BytesKind, protoreflect.MessageKind:
		return 2
	case protoreflect.Fixed64Kind, protoreflect.Sfixed64Kind, protoreflect.DoubleKind:
		return 1
	case protoreflect.Fixed32Kind, protoreflect.Sfixed32Kind, protoreflect.FloatKind:
		return 5
	default:
		return 0
	}
}

// typeName is a field's type as wasm-abi.md writes it.
func typeName(f protoreflect.FieldDescriptor) string {
	switch {
	case f.IsMap():
		return fmt.Sprintf("`map<%s, %s>`", f.MapKey().Kind(), f.MapValue().Kind())
	case f.Kind() == protoreflect.MessageKind && f.IsList():
		return "repeated `" + string(f.Message().Name()) + "`"
	case f.Kind() == protoreflect.MessageKind:
		return "`" + string(f.Message().Name()) + "`"
	case f.Kind() == protoreflect.EnumKind:
		return "`" + string(f.Enum().Name()) + "` (enum)"
	case f.IsList():
		return "repeated " + f.Kind().String()
	}
	return f.Kind().String()
}

// section returns a guide's text under a heading, up to the next heading
// of the same or a higher level.
func section(t *testing.T, file, heading string) string {
	t.Helper()
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	level := strings.IndexByte(heading, ' ')
	var out []string
	in := false
	for line := range strings.Lines(string(raw)) {
		if n := len(line) - len(strings.TrimLeft(line, "#")); n > 0 && strings.HasPrefix(line[n:], " ") {
			if in && n <= level {
				break
			}
			in = in || strings.TrimSpace(line) == heading
		}
		if in {
			out = append(out, line)
		}
	}
	if !in {
		t.Fatalf("%s has no heading %q", file, heading)
	}
	return strings.Join(out, "")
}
