// A form made from an action's input JSON Schema: the field kinds the
// schemas Relay's SDK derives use (strings with formats and enums,
// numbers, booleans, nested objects, arrays), each labelled, with its
// description, required mark and error; anything else is edited as JSON.
import { useState } from "preact/hooks";

export interface JSONSchema {
  type?: string | string[];
  title?: string;
  description?: string;
  properties?: Record<string, JSONSchema>;
  required?: string[];
  items?: JSONSchema;
  enum?: unknown[];
  format?: string;
  minLength?: number;
  maxLength?: number;
  minimum?: number;
  maximum?: number;
  default?: unknown;
  writeOnly?: boolean;
  "x-relay-secret"?: boolean;
}

export type Errors = Record<string, string>; // JSON Pointer within the params -> message

/** What a JSON field holds while its text does not parse. */
export class InvalidJSON {
  constructor(readonly text: string) {}
}

function kind(s: JSONSchema): string {
  const t = Array.isArray(s.type) ? s.type.find((x) => x !== "null") : s.type;
  if (t) return t;
  if (s.properties) return "object";
  return "json";
}

function isSecret(s: JSONSchema): boolean {
  return s["x-relay-secret"] === true || s.writeOnly === true || s.format === "password";
}

/** validate checks value against the schema as far as the form can: what the server checks in full. */
export function validate(s: JSONSchema, value: unknown, at = ""): Errors {
  const errs: Errors = {};
  const k = kind(s);
  if (value instanceof InvalidJSON) return { [at]: "not valid JSON" };
  if (k === "object" && value !== undefined && (typeof value !== "object" || value === null || Array.isArray(value))) {
    return { [at]: "a JSON object, please" };
  }
  if (value === undefined || value === "") return errs;
  if (k === "object" && s.properties) {
    const obj = (value ?? {}) as Record<string, unknown>;
    for (const name of s.required ?? []) {
      if (obj[name] === undefined || obj[name] === "") errs[`${at}/${name}`] = "required";
    }
    for (const [name, sub] of Object.entries(s.properties)) {
      Object.assign(errs, validate(sub, obj[name], `${at}/${name}`));
    }
  } else if (k === "array" && Array.isArray(value) && s.items) {
    value.forEach((v, i) => Object.assign(errs, validate(s.items!, v, `${at}/${i}`)));
  } else if (k === "integer" || k === "number") {
    if (typeof value !== "number" || Number.isNaN(value)) errs[at] = "a number, please";
    else if (k === "integer" && !Number.isInteger(value)) errs[at] = "a whole number, please";
    else if (s.minimum !== undefined && value < s.minimum) errs[at] = `at least ${s.minimum}`;
    else if (s.maximum !== undefined && value > s.maximum) errs[at] = `at most ${s.maximum}`;
  } else if (k === "string" && typeof value === "string") {
    if (s.enum && !s.enum.includes(value)) errs[at] = "one of the choices, please";
    else if (s.minLength !== undefined && value.length < s.minLength) errs[at] = `at least ${s.minLength} characters`;
    else if (s.maxLength !== undefined && value.length > s.maxLength) errs[at] = `at most ${s.maxLength} characters`;
  }
  return errs;
}

interface FieldProps {
  name: string;
  schema: JSONSchema;
  value: unknown;
  required: boolean;
  pointer: string;
  errors: Errors;
  disabled: boolean;
  onChange: (v: unknown) => void;
}

const id = (pointer: string) => "f" + pointer.replace(/[^a-zA-Z0-9_-]/g, "_");

export function SchemaForm(props: {
  schema: JSONSchema;
  value: Record<string, unknown>;
  errors: Errors;
  disabled: boolean;
  onChange: (v: Record<string, unknown>) => void;
}) {
  if (!props.schema.properties) {
    // Any object: edited whole, as JSON.
    return (
      <JSONField
        name="Input"
        schema={{ ...props.schema, title: "Input (a JSON object)" }}
        value={props.value}
        required={false}
        pointer=""
        errors={props.errors}
        disabled={props.disabled}
        onChange={(v) => props.onChange(v === undefined ? {} : (v as Record<string, unknown>))}
      />
    );
  }
  if (Object.keys(props.schema.properties).length === 0) {
    return <p class="muted">This action takes no input.</p>;
  }
  return (
    <ObjectFields
      schema={props.schema}
      value={props.value}
      pointer=""
      errors={props.errors}
      disabled={props.disabled}
      onChange={(v) => props.onChange(v as Record<string, unknown>)}
    />
  );
}

function ObjectFields(p: { schema: JSONSchema; value: unknown; pointer: string; errors: Errors; disabled: boolean; onChange: (v: unknown) => void }) {
  const obj = (p.value ?? {}) as Record<string, unknown>;
  const required = new Set(p.schema.required ?? []);
  return (
    <div class="fields">
      {Object.entries(p.schema.properties ?? {}).map(([name, sub]) => (
        <Field
          key={name}
          name={name}
          schema={sub}
          value={obj[name]}
          required={required.has(name)}
          pointer={`${p.pointer}/${name}`}
          errors={p.errors}
          disabled={p.disabled}
          onChange={(v) => {
            const next = { ...obj };
            if (v === undefined || v === "") delete next[name];
            else next[name] = v;
            p.onChange(next);
          }}
        />
      ))}
    </div>
  );
}

function Label(p: FieldProps & { for?: string }) {
  return (
    <label for={p.for ?? id(p.pointer)}>
      {p.schema.title ?? p.name}
      {p.required ? <span class="req" aria-hidden="true"> *</span> : null}
      {p.required ? <span class="sr-only"> (required)</span> : null}
    </label>
  );
}

function Help(p: FieldProps) {
  const err = p.errors[p.pointer];
  return (
    <>
      {p.schema.description ? <p class="help" id={id(p.pointer) + "-help"}>{p.schema.description}</p> : null}
      {err ? <p class="error" id={id(p.pointer) + "-error"} role="alert">{err}</p> : null}
    </>
  );
}

function described(p: FieldProps): string | undefined {
  const ids = [];
  if (p.schema.description) ids.push(id(p.pointer) + "-help");
  if (p.errors[p.pointer]) ids.push(id(p.pointer) + "-error");
  return ids.length ? ids.join(" ") : undefined;
}

const inputTypes: Record<string, string> = { email: "email", uri: "url", url: "url", date: "date", "date-time": "datetime-local" };

function Field(p: FieldProps) {
  const k = kind(p.schema);
  const common = {
    id: id(p.pointer),
    disabled: p.disabled,
    "aria-invalid": p.errors[p.pointer] ? true : undefined,
    "aria-describedby": described(p),
    "aria-required": p.required || undefined,
  };
  if (k === "object" && p.schema.properties) {
    return (
      <fieldset class="nested">
        <legend>{p.schema.title ?? p.name}</legend>
        <Help {...p} />
        <ObjectFields schema={p.schema} value={p.value} pointer={p.pointer} errors={p.errors} disabled={p.disabled} onChange={p.onChange} />
      </fieldset>
    );
  }
  if (k === "array" && p.schema.items && kind(p.schema.items) !== "json") {
    return <ArrayField {...p} />;
  }
  if (k === "boolean") {
    return (
      <div class="field check">
        <input type="checkbox" {...common} checked={p.value === true} onChange={(e) => p.onChange(e.currentTarget.checked)} />
        <Label {...p} />
        <Help {...p} />
      </div>
    );
  }
  if (k === "string" && p.schema.enum) {
    return (
      <div class="field">
        <Label {...p} />
        <select {...common} value={(p.value as string) ?? ""} onChange={(e) => p.onChange(e.currentTarget.value || undefined)}>
          <option value="">—</option>
          {p.schema.enum.map((v) => (
            <option key={String(v)} value={String(v)}>{String(v)}</option>
          ))}
        </select>
        <Help {...p} />
      </div>
    );
  }
  if (k === "string") {
    const type = isSecret(p.schema) ? "password" : (inputTypes[p.schema.format ?? ""] ?? "text");
    return (
      <div class="field">
        <Label {...p} />
        <input
          type={type}
          autocomplete={type === "password" ? "off" : undefined}
          {...common}
          value={(p.value as string) ?? ""}
          onInput={(e) => p.onChange(e.currentTarget.value)}
        />
        <Help {...p} />
      </div>
    );
  }
  if (k === "integer" || k === "number") {
    return (
      <div class="field">
        <Label {...p} />
        <input
          type="number"
          step={k === "integer" ? 1 : "any"}
          {...common}
          value={p.value === undefined ? "" : String(p.value)}
          onInput={(e) => {
            const raw = e.currentTarget.value;
            p.onChange(raw === "" ? undefined : Number(raw));
          }}
        />
        <Help {...p} />
      </div>
    );
  }
  return <JSONField {...p} />;
}

function ArrayField(p: FieldProps) {
  const items = Array.isArray(p.value) ? (p.value as unknown[]) : [];
  const set = (next: unknown[]) => p.onChange(next.length ? next : undefined);
  return (
    <fieldset class="nested">
      <legend>{p.schema.title ?? p.name}{p.required ? " *" : ""}</legend>
      <Help {...p} />
      {items.map((v, i) => (
        <div class="array-item" key={i}>
          <Field
            name={`${p.name} ${i + 1}`}
            schema={p.schema.items!}
            value={v}
            required={false}
            pointer={`${p.pointer}/${i}`}
            errors={p.errors}
            disabled={p.disabled}
            onChange={(nv) => set(items.map((x, j) => (j === i ? nv : x)))}
          />
          <button type="button" class="secondary" disabled={p.disabled} onClick={() => set(items.filter((_, j) => j !== i))}>
            Remove {p.name} {i + 1}
          </button>
        </div>
      ))}
      <button type="button" class="secondary" disabled={p.disabled} onClick={() => set([...items, kind(p.schema.items!) === "object" ? {} : ""])}>
        Add {p.name}
      </button>
    </fieldset>
  );
}

// JSONField edits a value the form has no control for as JSON text; the
// text is kept while it does not parse, and reported as invalid.
function JSONField(p: FieldProps) {
  const [text, setText] = useState(
    p.value instanceof InvalidJSON ? p.value.text : p.value === undefined ? "" : JSON.stringify(p.value, null, 2),
  );
  return (
    <div class="field">
      <Label {...p} />
      <textarea
        id={id(p.pointer)}
        rows={4}
        disabled={p.disabled}
        aria-describedby={described(p)}
        value={text}
        onInput={(e) => {
          const t = e.currentTarget.value;
          setText(t);
          if (t.trim() === "") return p.onChange(undefined);
          try {
            p.onChange(JSON.parse(t));
          } catch {
            p.onChange(new InvalidJSON(t)); // validate reports it
          }
        }}
      />
      <p class="help">JSON</p>
      <Help {...p} />
    </div>
  );
}
