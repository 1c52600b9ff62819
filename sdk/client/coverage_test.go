package client

import (
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// The client covers every operation of Relay's OpenAPI document: each
// method's doc comment names the route it calls, "(GET /v1/runs)", and
// every route of the document is named by one, but the one only Stripe
// calls and MCP's.
func TestEveryOperationCovered(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", "..", "schemas", "openapi.json"))
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Paths map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	// Stripe's webhook, and MCP, which an MCP client speaks.
	notCalled := map[string]bool{"POST /v1/billing/stripe/webhook": true, "POST /mcp": true}
	var want []string
	for path, item := range doc.Paths {
		for method := range item {
			op := strings.ToUpper(method) + " " + path
			if slices.Contains([]string{"GET", "POST", "PUT", "PATCH", "DELETE"}, strings.ToUpper(method)) && !notCalled[op] {
				want = append(want, op)
			}
		}
	}
	route := regexp.MustCompile(`\b(GET|POST|PUT|PATCH|DELETE) (/[^\s,)?]+)`)
	covered := map[string]string{}
	fset := token.NewFileSet()
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, parser.ParseComments)
		if err != nil {
			t.Fatal(err)
		}
		for _, decl := range f.Decls {
			fn, ok := decl.(*ast.FuncDecl)
			if !ok || fn.Doc == nil || !fn.Name.IsExported() {
				continue
			}
			text := strings.Join(strings.Fields(fn.Doc.Text()), " ")
			for _, m := range route.FindAllStringSubmatch(text, -1) {
				covered[m[1]+" "+m[2]] = fn.Name.Name
			}
		}
	}
	slices.Sort(want)
	for _, op := range want {
		if covered[op] == "" {
			t.Errorf("%s: no method of the client calls it", op)
		}
	}
	for op, fn := range covered {
		if !slices.Contains(want, op) && !notCalled[op] {
			t.Errorf("%s names %s, which the document does not have", fn, op)
		}
	}
}
