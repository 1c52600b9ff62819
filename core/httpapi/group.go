package httpapi

import (
	"io"
	"net/http"
	"net/url"

	"github.com/gofiber/fiber/v2"

	"github.com/relayhq/relay/core"
)

// serveGroupRoute adapts another package's route (core.Route) to the
// server: the request as core.Request, the response written from
// core.Response, an error answered as a problem like any other.
func (s *Server) serveGroupRoute(r core.Route) func(c *fiber.Ctx, p *principal) error {
	return func(c *fiber.Ctx, p *principal) error {
		rid, _ := c.Locals(localRequestID).(string)
		req := &core.Request{Params: map[string]string{}, Query: url.Values{}, Header: http.Header{}, Body: c.Body(),
			IP: c.IP(), RequestID: rid}
		for _, name := range c.Route().Params {
			req.Params[name] = c.Params(name)
		}
		c.Context().QueryArgs().VisitAll(func(k, v []byte) { req.Query.Add(string(k), string(v)) })
		c.Request().Header.VisitAll(func(k, v []byte) { req.Header.Add(string(k), string(v)) })
		if p != nil {
			ac := p.caller(c)
			req.Caller = &core.Caller{WorkspaceID: ac.WorkspaceID, KeyID: ac.KeyID, Role: ac.Role, IP: ac.IP, RequestID: ac.RequestID}
		}
		resp, err := r.Handle(c.UserContext(), req)
		if err != nil {
			return err
		}
		for k, vs := range resp.Header {
			for _, v := range vs {
				c.Response().Header.Add(k, v)
			}
		}
		status := resp.Status
		if status == 0 {
			status = http.StatusOK
		}
		c.Status(status)
		switch {
		case resp.JSON != nil:
			return c.JSON(resp.JSON)
		case resp.Body != nil:
			if cl, ok := resp.Body.(io.Closer); ok {
				defer cl.Close()
			}
			data, err := io.ReadAll(resp.Body)
			if err != nil {
				return err
			}
			return c.Send(data)
		}
		return nil
	}
}
