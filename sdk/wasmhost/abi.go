package wasmhost

import (
	"fmt"
	"slices"
	"strings"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
)

// The names of the ABI (docs/wasm-abi.md).
const (
	exportMemory      = "memory"
	exportVersion     = "relay_abi_version"
	exportAlloc       = "relay_alloc"
	exportFree        = "relay_free"
	exportDescribe    = "relay_describe"
	exportCheckConfig = "relay_check_config"
	exportPreview     = "relay_preview"
	exportExecute     = "relay_execute"
	exportInitialize  = "_initialize"
	exportStart       = "_start"

	relayModuleName = "relay"
)

type signature struct {
	params, results []api.ValueType
}

var (
	i32 = api.ValueTypeI32
	i64 = api.ValueTypeI64
)

// exports are the functions the host calls, with their signatures.
var exports = []struct {
	name string
	sig  signature
}{
	{exportVersion, signature{nil, []api.ValueType{i32}}},
	{exportAlloc, signature{[]api.ValueType{i32}, []api.ValueType{i32}}},
	{exportFree, signature{[]api.ValueType{i32, i32}, nil}},
	{exportDescribe, signature{[]api.ValueType{i32, i32}, []api.ValueType{i64}}},
	{exportCheckConfig, signature{[]api.ValueType{i32, i32}, []api.ValueType{i64}}},
	{exportPreview, signature{[]api.ValueType{i32, i32}, []api.ValueType{i64}}},
	{exportExecute, signature{[]api.ValueType{i32, i32}, []api.ValueType{i64}}},
}

func (s signature) String() string {
	names := func(ts []api.ValueType) string {
		out := make([]string, len(ts))
		for i, t := range ts {
			out[i] = api.ValueTypeName(t)
		}
		return strings.Join(out, ", ")
	}
	return "(" + names(s.params) + ") -> (" + names(s.results) + ")"
}

func sigOf(d api.FunctionDefinition) signature {
	return signature{d.ParamTypes(), d.ResultTypes()}
}

func (s signature) equal(o signature) bool {
	return slices.Equal(s.params, o.params) && slices.Equal(s.results, o.results)
}

// checkABI checks a compiled module's exports and imports against the ABI
// and reports whether it exports _initialize. The memory's minimum is
// checked by wazero when it compiles (the runtime's memory limit).
func (e *Engine) checkABI(cm wazero.CompiledModule) (initialize bool, err error) {
	var problems []string
	fns := cm.ExportedFunctions()
	for _, x := range exports {
		d, ok := fns[x.name]
		switch {
		case !ok:
			problems = append(problems, fmt.Sprintf("it does not export the function %s%s", x.name, x.sig))
		case !sigOf(d).equal(x.sig):
			problems = append(problems, fmt.Sprintf("its export %s is %s, not %s", x.name, sigOf(d), x.sig))
		}
	}
	if d, ok := fns[exportInitialize]; ok {
		initialize = true
		if want := (signature{}); !sigOf(d).equal(want) {
			problems = append(problems, fmt.Sprintf("its export %s is %s, not %s", exportInitialize, sigOf(d), want))
		}
	} else if _, ok := fns[exportStart]; ok {
		problems = append(problems, "it exports _start and no _initialize: it is a command (a program with a main), not a reactor; "+
			"build it as a library (Go: -buildmode=c-shared; wasi-libc: -mexec-model=reactor)")
	}
	if _, ok := cm.ExportedMemories()[exportMemory]; !ok {
		problems = append(problems, `it does not export its memory as "memory"`)
	}
	for _, m := range cm.ImportedMemories() {
		mod, name, _ := m.Import()
		problems = append(problems, fmt.Sprintf("it imports the memory %s.%s; a guest defines its own memory", mod, name))
	}
	for _, d := range cm.ImportedFunctions() {
		mod, name, _ := d.Import()
		host, ok := e.hostFuncs[mod]
		if !ok {
			problems = append(problems, fmt.Sprintf("it imports %s.%s, from module %q, which the host does not provide (it provides %q and %q)",
				mod, name, mod, relayModuleName, "wasi_snapshot_preview1"))
			continue
		}
		h, ok := host[name]
		switch {
		case !ok:
			problems = append(problems, fmt.Sprintf("it imports %s.%s, which the host does not provide", mod, name))
		case !sigOf(h).equal(sigOf(d)):
			problems = append(problems, fmt.Sprintf("it imports %s.%s as %s, but the host's is %s", mod, name, sigOf(d), sigOf(h)))
		}
	}
	if len(problems) > 0 {
		return false, fmt.Errorf("%s", strings.Join(problems, "; "))
	}
	return initialize, nil
}
