package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"strconv"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/relayhq/relay/core"
)

var jsonMarshal = json.Marshal

// decodeBody reads a JSON object into v. The body must say it is JSON
// (Content-Type: application/json, with or without a charset). Unknown
// fields are refused, so a misspelt field is an error rather than
// silently ignored.
func decodeBody(c *fiber.Ctx, v any) error {
	mt, _, err := mime.ParseMediaType(c.Get(fiber.HeaderContentType))
	if err != nil || mt != fiber.MIMEApplicationJSON {
		return core.Errorf(core.EUnsupportedMedia, "the body must be a JSON object sent with Content-Type: application/json")
	}
	dec := json.NewDecoder(bytes.NewReader(c.Body()))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		if errors.Is(err, io.EOF) {
			return core.Errorf(core.EInvalid, "the body must be a JSON object")
		}
		return core.Errorf(core.EInvalid, "invalid JSON body: %s", jsonErrorText(err))
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return core.Errorf(core.EInvalid, "invalid JSON body: unexpected data after the object")
	}
	return nil
}

// jsonErrorText says what is wrong with a body without echoing Go type names.
func jsonErrorText(err error) string {
	var typeErr *json.UnmarshalTypeError
	var syntaxErr *json.SyntaxError
	switch {
	case errors.As(err, &typeErr):
		if typeErr.Field == "" {
			return "the body must be a JSON object"
		}
		return "field " + strconv.Quote(typeErr.Field) + " has the wrong type"
	case errors.As(err, &syntaxErr):
		return "syntax error at byte " + strconv.FormatInt(syntaxErr.Offset, 10)
	}
	return err.Error()
}

// pageParams reads ?limit= and ?cursor=.
func pageParams(c *fiber.Ctx) (core.Page, error) {
	p := core.Page{Limit: core.DefaultPageLimit, Cursor: c.Query("cursor")}
	if s := c.Query("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > core.MaxPageLimit {
			return p, core.Errorf(core.EInvalid, "limit must be a whole number from 1 to %d", core.MaxPageLimit)
		}
		p.Limit = n
	}
	return p, nil
}

// timeParam reads an RFC 3339 time from the query; zero when it is not
// there.
func timeParam(c *fiber.Ctx, name string) (time.Time, error) {
	s := c.Query(name)
	if s == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return t, core.Errorf(core.EInvalid, "%s %q: want a time in RFC 3339, like 2026-12-06T09:30:00Z", name, s)
	}
	return t, nil
}

// list is the shape of every list response.
type list[T any] struct {
	Data       []T     `json:"data"`
	NextCursor *string `json:"next_cursor"`
}

func newList[T any](items []T, next string) list[T] {
	l := list[T]{Data: items}
	if l.Data == nil {
		l.Data = []T{}
	}
	if next != "" {
		l.NextCursor = &next
	}
	return l
}
