package httpapi

import (
	"net/http"
	"strconv"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/relayhq/relay/core"
	"github.com/relayhq/relay/core/actions"
)

func (s *Server) listActions(c *fiber.Ctx, p *principal) error {
	list, err := s.cfg.Actions.ListActions(c.UserContext(), p.Workspace.ID)
	if err != nil {
		return err
	}
	return c.JSON(fiber.Map{"data": nonNil(list)})
}

func (s *Server) getAction(c *fiber.Ctx, p *principal) error {
	a, err := s.cfg.Actions.GetAction(c.UserContext(), p.Workspace.ID, c.Params("id"))
	if err != nil {
		return err
	}
	return c.JSON(a)
}

func (s *Server) previewAction(c *fiber.Ctx, p *principal) error {
	var req actions.Request
	if err := decodeBody(c, &req); err != nil {
		return err
	}
	if req.ConfirmToken != "" || req.Mode != "" {
		return core.Errorf(core.EInvalid, "preview takes params and connection only")
	}
	res, err := s.cfg.Actions.Preview(c.UserContext(), p.caller(c), c.Params("id"), req, c.Get("Idempotency-Key"))
	if err != nil {
		return err
	}
	return c.JSON(res)
}

func (s *Server) executeAction(c *fiber.Ctx, p *principal) error {
	var req actions.Request
	if err := decodeBody(c, &req); err != nil {
		return err
	}
	res, err := s.cfg.Actions.Execute(c.UserContext(), p.caller(c), c.Params("id"), req, c.Get("Idempotency-Key"))
	if err != nil {
		return err
	}
	return sendResult(c, res)
}

// retryRun runs a failed or interrupted run again. The body is optional.
func (s *Server) retryRun(c *fiber.Ctx, p *principal) error {
	var req actions.RetryRequest
	if len(c.Body()) > 0 {
		if err := decodeBody(c, &req); err != nil {
			return err
		}
	}
	res, err := s.cfg.Actions.Retry(c.UserContext(), p.caller(c), c.Params("id"), req)
	if err != nil {
		return err
	}
	return sendResult(c, res)
}

// sendResult sends an execution's answer: a run, or a problem carrying
// one.
func sendResult(c *fiber.Ctx, res *actions.Result) error {
	if res.Replayed {
		c.Set("Idempotent-Replayed", "true")
	}
	ct := fiber.MIMEApplicationJSON
	if res.Status >= 400 {
		ct = problemContentType
	}
	c.Set(fiber.HeaderContentType, ct)
	return c.Status(res.Status).Send(res.Body)
}

// ObserveRun counts a run that ended in the action metrics.
func (s *Server) ObserveRun(run *core.Run, took time.Duration) {
	s.metrics.actionExec.WithLabelValues(run.Action, string(run.Status)).Inc()
	s.metrics.actionLatency.WithLabelValues(run.Action).Observe(took.Seconds())
	if run.Error != nil {
		s.metrics.actionErrors.WithLabelValues(run.Action, run.Error.Code).Inc()
	}
}

// RunResponse renders a finished run as the response an execute request
// gets, and that its Idempotency-Key replays: the run itself when it
// succeeded, a problem naming its error (with the run) when it did not.
func RunResponse(run *core.Run) (int, []byte) {
	switch run.Status {
	case core.RunSucceeded, core.RunQueued, core.RunRunning:
		status := http.StatusOK
		if run.Status != core.RunSucceeded {
			status = http.StatusAccepted
		}
		body, _ := jsonMarshal(run)
		return status, body
	}
	code, msg := core.ERunInterrupted, "the server stopped during the run; it may or may not have taken effect"
	if run.Error != nil {
		code, msg = run.Error.Code, run.Error.Message
	}
	p, _ := problemFor(&core.Error{Code: code, Message: msg})
	body, _ := jsonMarshal(struct {
		Problem
		Run *core.Run `json:"run"`
	}{p, run})
	return p.Status, body
}

// caller is the principal as the engine records it.
func (p *principal) caller(c *fiber.Ctx) actions.Caller {
	rid, _ := c.Locals(localRequestID).(string)
	cl := actions.Caller{WorkspaceID: p.Workspace.ID, KeyID: p.Key.ID, Role: p.Key.Role, IP: c.IP(), RequestID: rid}
	if h := p.Workspace.IdempotencyHours; h != nil {
		cl.IdempotencyHours = *h
	}
	return cl
}

func (s *Server) listRuns(c *fiber.Ctx, p *principal) error {
	page, err := pageParams(c)
	if err != nil {
		return err
	}
	f := core.RunFilter{Action: c.Query("action"), Status: core.RunStatus(c.Query("status"))}
	if f.Since, err = timeParam(c, "since"); err != nil {
		return err
	}
	if f.Until, err = timeParam(c, "until"); err != nil {
		return err
	}
	runs, next, err := s.cfg.Actions.ListRuns(c.UserContext(), p.Workspace.ID, f, page)
	if err != nil {
		return err
	}
	return c.JSON(newList(runs, next))
}

func (s *Server) getRun(c *fiber.Ctx, p *principal) error {
	run, err := s.cfg.Actions.GetRun(c.UserContext(), p.Workspace.ID, c.Params("id"))
	if err != nil {
		return err
	}
	return c.JSON(run)
}

// retryAfterHeader sets Retry-After for an error that says when to retry.
func retryAfterHeader(c *fiber.Ctx, e *core.Error) {
	if e != nil && e.RetryAfter > 0 {
		c.Set(fiber.HeaderRetryAfter, strconv.Itoa(max(1, ceilSeconds(e.RetryAfter))))
	}
}
