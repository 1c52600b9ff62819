package billing

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"

	"github.com/relayhq/relay/core"
	"github.com/relayhq/relay/registry"
)

// Routes are billing's HTTP endpoints (docs/billing.md): a listing's
// price, which anyone may read and its publisher sets (with its token,
// as for everything a publisher does), and a workspace's usage.
func (s *Service) Routes() []core.Route {
	price := "/v1/registry/packages/{publisher}/{name}/price"
	return []core.Route{
		{Method: http.MethodGet, Path: price, Handle: s.getPrice},
		{Method: http.MethodPut, Path: price, Handle: s.AsPublisher(s.setPrice)},
		{Method: http.MethodDelete, Path: price + "/pending", Handle: s.AsPublisher(s.withdrawPrice)},
		{Method: http.MethodGet, Path: "/v1/usage", Role: core.RoleDeveloper, Handle: s.getUsage},
		{Method: http.MethodGet, Path: "/v1/billing/invoices", Role: core.RoleAdmin, Handle: s.listInvoices},
		{Method: http.MethodGet, Path: "/v1/billing/invoices/{id}", Role: core.RoleAdmin, Handle: s.getInvoice},
		{Method: http.MethodGet, Path: "/v1/publisher/statements", Handle: s.AsPublisher(s.listStatements)},
		{Method: http.MethodGet, Path: "/v1/billing/budgets", Role: core.RoleDeveloper, Handle: s.listBudgets},
		{Method: http.MethodPut, Path: "/v1/billing/budgets/{scope}", Role: core.RoleAdmin, Handle: s.putBudget},
		{Method: http.MethodDelete, Path: "/v1/billing/budgets/{scope}", Role: core.RoleAdmin, Handle: s.deleteBudget},
		{Method: http.MethodGet, Path: "/v1/billing/alert-hook", Role: core.RoleAdmin, Handle: s.getAlertHook},
		{Method: http.MethodPut, Path: "/v1/billing/alert-hook", Role: core.RoleAdmin, Handle: s.putAlertHook},
		{Method: http.MethodDelete, Path: "/v1/billing/alert-hook", Role: core.RoleAdmin, Handle: s.deleteAlertHook},
	}
}

// PublisherHandler handles a publisher's request.
type PublisherHandler func(ctx context.Context, req *core.Request, p *registry.Publisher, c *core.Caller) (*core.Response, error)

// AsPublisher is h for the publisher whose token the request carries.
func (s *Service) AsPublisher(h PublisherHandler) func(ctx context.Context, req *core.Request) (*core.Response, error) {
	return func(ctx context.Context, req *core.Request) (*core.Response, error) {
		p, c, err := s.cfg.Registry.Authenticate(ctx, req.Header.Get("Authorization"), req.IP, req.RequestID)
		if err != nil {
			return nil, err
		}
		if name := req.Param("publisher"); name != "" && name != p.Name {
			return nil, core.Errorf(core.EForbidden, "this token is publisher %s's, not %s's", p.Name, name)
		}
		return h(ctx, req, p, c)
	}
}

func listing(req *core.Request) string { return req.Param("publisher") + "/" + req.Param("name") }

func (s *Service) getPrice(ctx context.Context, req *core.Request) (*core.Response, error) {
	if err := s.listed(ctx, listing(req)); err != nil {
		return nil, err
	}
	p, err := s.Price(ctx, listing(req))
	if err != nil {
		return nil, err
	}
	return core.JSONResponse(http.StatusOK, p), nil
}

func (s *Service) setPrice(ctx context.Context, req *core.Request, p *registry.Publisher, c *core.Caller) (*core.Response, error) {
	var in struct {
		Plan          json.RawMessage `json:"plan"`
		EffectiveFrom string          `json:"effective_from"`
	}
	if err := req.DecodeJSON(&in); err != nil {
		return nil, err
	}
	if len(in.Plan) == 0 {
		return nil, invalid("/plan", "missing plan")
	}
	plan, err := ParsePlan(in.Plan)
	if err != nil {
		return nil, underPlan(err)
	}
	price, err := s.SetPrice(ctx, p, c, listing(req), plan, in.EffectiveFrom)
	if err != nil {
		return nil, err
	}
	return core.JSONResponse(http.StatusOK, price), nil
}

// underPlan moves a plan's error pointers under /plan, where the plan is
// in the request.
func underPlan(err error) error {
	e, ok := err.(*core.Error)
	if !ok {
		return err
	}
	out := *e
	out.Fields = nil
	for _, f := range e.Fields {
		out.Fields = append(out.Fields, core.FieldError{Pointer: "/plan" + f.Pointer, Message: f.Message})
	}
	return &out
}

func (s *Service) withdrawPrice(ctx context.Context, req *core.Request, p *registry.Publisher, c *core.Caller) (*core.Response, error) {
	if err := s.WithdrawPrice(ctx, p, c, listing(req)); err != nil {
		return nil, err
	}
	return &core.Response{Status: http.StatusNoContent}, nil
}

func (s *Service) getUsage(ctx context.Context, req *core.Request) (*core.Response, error) {
	q := UsageQuery{From: req.Query.Get("from"), To: req.Query.Get("to"), GroupBy: req.Query.Get("group_by")}
	groups, q, err := s.Usage(ctx, req.Caller.WorkspaceID, q)
	if err != nil {
		return nil, err
	}
	return core.JSONResponse(http.StatusOK, map[string]any{
		"from": q.From, "to": q.To, "group_by": q.GroupBy, "data": groups,
	}), nil
}

// wantsCSV reports whether the request asks for CSV (?format=csv) rather
// than JSON (?format=json, the default).
func wantsCSV(req *core.Request) (bool, error) {
	switch req.Query.Get("format") {
	case "", "json":
		return false, nil
	case "csv":
		return true, nil
	}
	return false, core.Errorf(core.EInvalid, "format %q: want json or csv", req.Query.Get("format"))
}

// csvResponse is a CSV download named name.
func csvResponse(name string, write func(w io.Writer) error) (*core.Response, error) {
	var b bytes.Buffer
	if err := write(&b); err != nil {
		return nil, err
	}
	h := http.Header{}
	h.Set("Content-Type", "text/csv; charset=utf-8")
	h.Set("Content-Disposition", `attachment; filename="`+name+`"`)
	return &core.Response{Status: http.StatusOK, Header: h, Body: &b}, nil
}

func (s *Service) listInvoices(ctx context.Context, req *core.Request) (*core.Response, error) {
	invoices, err := s.Invoices(ctx, req.Caller.WorkspaceID)
	if err != nil {
		return nil, err
	}
	return core.JSONResponse(http.StatusOK, map[string]any{"data": invoices}), nil
}

func (s *Service) getInvoice(ctx context.Context, req *core.Request) (*core.Response, error) {
	asCSV, err := wantsCSV(req)
	if err != nil {
		return nil, err
	}
	inv, err := s.Invoice(ctx, req.Caller.WorkspaceID, req.Param("id"))
	if err != nil {
		return nil, err
	}
	if asCSV {
		return csvResponse("invoice-"+inv.Period+"-"+inv.ID+".csv", func(w io.Writer) error { return WriteInvoiceCSV(w, inv) })
	}
	return core.JSONResponse(http.StatusOK, inv), nil
}

func (s *Service) listStatements(ctx context.Context, req *core.Request, p *registry.Publisher, _ *core.Caller) (*core.Response, error) {
	asCSV, err := wantsCSV(req)
	if err != nil {
		return nil, err
	}
	statements, err := s.Statements(ctx, p.Name, req.Query.Get("period"))
	if err != nil {
		return nil, err
	}
	if asCSV {
		return csvResponse("statements-"+p.Name+".csv", func(w io.Writer) error { return WriteStatementsCSV(w, statements) })
	}
	return core.JSONResponse(http.StatusOK, map[string]any{"data": statements}), nil
}

func (s *Service) listBudgets(ctx context.Context, req *core.Request) (*core.Response, error) {
	list, err := s.Budgets(ctx, req.Caller.WorkspaceID)
	if err != nil {
		return nil, err
	}
	if list == nil {
		list = []Budget{}
	}
	return core.JSONResponse(http.StatusOK, map[string]any{"data": list}), nil
}

func (s *Service) putBudget(ctx context.Context, req *core.Request) (*core.Response, error) {
	var in struct {
		Currency string `json:"currency"`
		Amount   *int64 `json:"amount"`
		Hard     bool   `json:"hard"`
	}
	if err := req.DecodeJSON(&in); err != nil {
		return nil, err
	}
	if in.Amount == nil {
		return nil, &core.Error{Code: core.EInvalid, Message: "missing amount", Fields: []core.FieldError{{Pointer: "/amount", Message: "required"}}}
	}
	b, err := s.SetBudget(ctx, req.Caller, req.Param("scope"), Budget{Currency: in.Currency, Amount: *in.Amount, Hard: in.Hard})
	if err != nil {
		return nil, err
	}
	return core.JSONResponse(http.StatusOK, b), nil
}

func (s *Service) deleteBudget(ctx context.Context, req *core.Request) (*core.Response, error) {
	if err := s.DeleteBudget(ctx, req.Caller, req.Param("scope")); err != nil {
		return nil, err
	}
	return &core.Response{Status: http.StatusNoContent}, nil
}

func (s *Service) getAlertHook(ctx context.Context, req *core.Request) (*core.Response, error) {
	h, err := s.AlertHookOf(ctx, req.Caller.WorkspaceID)
	if err != nil {
		return nil, err
	}
	return core.JSONResponse(http.StatusOK, h), nil
}

func (s *Service) putAlertHook(ctx context.Context, req *core.Request) (*core.Response, error) {
	var in struct {
		URL string `json:"url"`
	}
	if err := req.DecodeJSON(&in); err != nil {
		return nil, err
	}
	h, err := s.SetAlertHook(ctx, req.Caller, in.URL)
	if err != nil {
		return nil, err
	}
	return core.JSONResponse(http.StatusOK, h), nil
}

func (s *Service) deleteAlertHook(ctx context.Context, req *core.Request) (*core.Response, error) {
	if err := s.DeleteAlertHook(ctx, req.Caller); err != nil {
		return nil, err
	}
	return &core.Response{Status: http.StatusNoContent}, nil
}
