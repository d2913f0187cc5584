// A form built from a JSON Schema: text, number and integer inputs, checkboxes (or a three-way
// choice when a boolean is optional), selects for enums, fieldsets for nested objects, lists with
// add/remove for arrays; anything else is a small raw JSON box. Required fields carry a mark,
// and each field shows the validator's problems at its own path.
import { useEffect, useState } from "react";
import type { ReactNode } from "react";

import { formType, initialValue, parseJson, pointer, unwrapNullable } from "./schema";
import type { JsonSchema, Problem } from "./schema";

type FieldProps = {
  schema: JsonSchema;
  root: JsonSchema;
  label: string;
  path: string;
  required: boolean;
  value: unknown;
  onChange: (value: unknown) => void;
  problems: Problem[];
  idPrefix: string;
};

function fieldId(prefix: string, path: string): string {
  return `${prefix}-${path.replace(/[^A-Za-z0-9_-]/g, "_") || "root"}`;
}

function Problems({ id, problems, path }: { id: string; problems: Problem[]; path: string }) {
  const mine = problems.filter((p) => p.path === path);
  if (!mine.length) return null;
  return (
    <small id={id} className="field-error">
      {mine.map((p) => p.message).join("; ")}
    </small>
  );
}

function LabelText({ label, required }: { label: string; required: boolean }) {
  return (
    <span>
      {label}
      {required ? (
        <span className="required-mark" aria-hidden="true">
          {" "}
          *
        </span>
      ) : null}
      {required ? <span className="visually-hidden"> (required)</span> : null}
    </span>
  );
}

function hasProblem(problems: Problem[], path: string): boolean {
  return problems.some((p) => p.path === path);
}

/** One value of `schema` (recursively for objects and arrays). */
export function SchemaField(props: FieldProps) {
  const { root, label, path, required, value, onChange, problems, idPrefix } = props;
  const { schema, nullable } = unwrapNullable(props.schema, root);
  const kind = formType(schema, root);
  const id = fieldId(idPrefix, path);
  const errorId = `${id}-error`;
  const invalid = hasProblem(problems, path);
  const common = {
    id,
    "aria-invalid": invalid || undefined,
    "aria-describedby": invalid ? errorId : undefined,
    "aria-required": required || undefined,
  };
  const optional = !required || nullable;
  const hint = schema.description ? <small className="muted">{schema.description}</small> : null;

  if (kind === "enum") {
    const options = schema.enum && schema.enum.length ? schema.enum : [schema.const];
    const index = options.findIndex((o) => JSON.stringify(o) === JSON.stringify(value));
    return (
      <div className="field">
        <label htmlFor={id}>
          <LabelText label={label} required={required} />
        </label>
        <select
          {...common}
          value={index < 0 ? "" : String(index)}
          onChange={(e) => onChange(e.target.value === "" ? undefined : options[Number(e.target.value)])}
        >
          {optional || index < 0 ? <option value="">—</option> : null}
          {options.map((option, i) => (
            <option key={i} value={String(i)}>
              {typeof option === "string" ? option : JSON.stringify(option)}
            </option>
          ))}
        </select>
        {hint}
        <Problems id={errorId} problems={problems} path={path} />
      </div>
    );
  }

  if (kind === "string") {
    const type =
      schema.format === "email" ? "email" : schema.format === "date" ? "date" : schema.format === "uri" ? "url" : "text";
    return (
      <div className="field">
        <label htmlFor={id}>
          <LabelText label={label} required={required} />
        </label>
        <input
          {...common}
          type={type}
          value={typeof value === "string" ? value : ""}
          maxLength={schema.maxLength}
          onChange={(e) => onChange(e.target.value === "" && optional ? undefined : e.target.value)}
        />
        {hint}
        <Problems id={errorId} problems={problems} path={path} />
      </div>
    );
  }

  if (kind === "number" || kind === "integer") {
    return (
      <NumberInput {...props} kind={kind} id={id} common={common} hint={hint} errorId={errorId} />
    );
  }

  if (kind === "boolean") {
    if (optional && schema.default === undefined) {
      return (
        <div className="field">
          <label htmlFor={id}>
            <LabelText label={label} required={required} />
          </label>
          <select
            {...common}
            value={value === true ? "true" : value === false ? "false" : ""}
            onChange={(e) => onChange(e.target.value === "" ? undefined : e.target.value === "true")}
          >
            <option value="">—</option>
            <option value="true">true</option>
            <option value="false">false</option>
          </select>
          {hint}
          <Problems id={errorId} problems={problems} path={path} />
        </div>
      );
    }
    return (
      <div className="field">
        <label className="check" htmlFor={id}>
          <input {...common} type="checkbox" checked={value === true} onChange={(e) => onChange(e.target.checked)} />
          <LabelText label={label} required={required} />
        </label>
        {hint}
        <Problems id={errorId} problems={problems} path={path} />
      </div>
    );
  }

  if (kind === "null") {
    return (
      <div className="field">
        <span>{label}</span>
        <span className="muted">null</span>
      </div>
    );
  }

  if (kind === "object" && schema.properties) {
    return (
      <Group label={label} required={required} hint={hint} problems={problems} path={path} errorId={errorId}>
        {value === undefined || value === null ? (
          <button type="button" className="btn plain" onClick={() => onChange(initialValue(schema, root))}>
            Add {label}
          </button>
        ) : (
          <>
            <ObjectFields {...props} schema={schema} />
            {optional ? (
              <button type="button" className="btn plain" onClick={() => onChange(undefined)}>
                Remove {label}
              </button>
            ) : null}
          </>
        )}
      </Group>
    );
  }

  if (kind === "array" && !Array.isArray(schema.items)) {
    const items = Array.isArray(value) ? value : [];
    const itemSchema = schema.items ?? {};
    return (
      <Group label={label} required={required} hint={hint} problems={problems} path={path} errorId={errorId}>
        {items.length === 0 ? <p className="muted small">No items.</p> : null}
        <ol className="sf-items">
          {items.map((item, index) => (
            <li key={index}>
              <SchemaField
                schema={itemSchema}
                root={root}
                label={`${label} ${index + 1}`}
                path={pointer(path, index)}
                required
                value={item}
                onChange={(next) => {
                  const copy = [...items];
                  copy[index] = next;
                  onChange(copy);
                }}
                problems={problems}
                idPrefix={idPrefix}
              />
              <button
                type="button"
                className="btn plain"
                onClick={() => onChange(items.filter((_, i) => i !== index))}
              >
                Remove {label} {index + 1}
              </button>
            </li>
          ))}
        </ol>
        <button
          type="button"
          className="btn plain"
          onClick={() => onChange([...items, initialValue(itemSchema, root)])}
          disabled={schema.maxItems !== undefined && items.length >= schema.maxItems}
        >
          Add to {label}
        </button>
      </Group>
    );
  }

  return <RawField {...props} id={id} common={common} hint={hint} errorId={errorId} />;
}

function Group(props: {
  label: string;
  required: boolean;
  hint: ReactNode;
  problems: Problem[];
  path: string;
  errorId: string;
  children: ReactNode;
}) {
  return (
    <fieldset className="sf-group">
      <legend>
        <LabelText label={props.label} required={props.required} />
      </legend>
      {props.hint}
      <Problems id={props.errorId} problems={props.problems} path={props.path} />
      {props.children}
    </fieldset>
  );
}

function ObjectFields(props: FieldProps) {
  const { schema, root, path, value, onChange, problems, idPrefix } = props;
  const object = (value ?? {}) as Record<string, unknown>;
  const required = new Set(schema.required ?? []);
  return (
    <div className="sf-fields">
      {Object.entries(schema.properties ?? {}).map(([name, prop]) => (
        <SchemaField
          key={name}
          schema={prop}
          root={root}
          label={name}
          path={pointer(path, name)}
          required={required.has(name)}
          value={object[name]}
          onChange={(next) => {
            const copy = { ...object };
            if (next === undefined) delete copy[name];
            else copy[name] = next;
            onChange(copy);
          }}
          problems={problems}
          idPrefix={idPrefix}
        />
      ))}
    </div>
  );
}

type Extra = {
  id: string;
  common: Record<string, unknown>;
  hint: ReactNode;
  errorId: string;
};

function NumberInput(props: FieldProps & Extra & { kind: "number" | "integer" }) {
  const { value, onChange, required, label, id, common, hint, errorId, problems, path, kind } = props;
  const { schema } = unwrapNullable(props.schema, props.root);
  // The text is kept as typed ("1.", "-") and becomes a number as soon as it reads as one.
  const [text, setText] = useState(typeof value === "number" ? String(value) : "");
  useEffect(() => {
    setText((current) => (Number(current) === value && current !== "" ? current : typeof value === "number" ? String(value) : ""));
  }, [value]);
  return (
    <div className="field">
      <label htmlFor={id}>
        <LabelText label={label} required={required} />
      </label>
      <input
        {...common}
        type="number"
        inputMode={kind === "integer" ? "numeric" : "decimal"}
        step={kind === "integer" ? 1 : "any"}
        min={schema.minimum}
        max={schema.maximum}
        value={text}
        onChange={(e) => {
          const next = e.target.value;
          setText(next);
          if (next.trim() === "") onChange(undefined);
          else if (!Number.isNaN(Number(next))) onChange(Number(next));
        }}
      />
      {hint}
      <Problems id={errorId} problems={problems} path={path} />
    </div>
  );
}

/** A JSON box for a part of the schema the form cannot draw (anyOf of objects, tuples…). */
function RawField(props: FieldProps & Extra) {
  const { value, onChange, required, label, id, hint, errorId, problems, path } = props;
  const [text, setText] = useState(value === undefined ? "" : JSON.stringify(value, null, 2));
  const [error, setError] = useState<string | null>(null);
  const invalid = error !== null || hasProblem(problems, path);
  return (
    <div className="field">
      <label htmlFor={id}>
        <LabelText label={label} required={required} /> <span className="muted small">(JSON)</span>
      </label>
      <textarea
        id={id}
        className="sf-raw"
        value={text}
        rows={3}
        aria-invalid={invalid || undefined}
        aria-describedby={invalid ? errorId : undefined}
        onChange={(e) => {
          setText(e.target.value);
          const parsed = parseJson(e.target.value);
          if (parsed.ok) {
            setError(null);
            onChange(parsed.value);
          } else {
            setError(parsed.error);
          }
        }}
      />
      {hint}
      {error ? (
        <small id={errorId} className="field-error">
          Not JSON: {error}
        </small>
      ) : (
        <Problems id={errorId} problems={problems} path={path} />
      )}
    </div>
  );
}

/** The form of a whole value: an object's fields at the top, or the one field it is. */
export function SchemaForm(props: {
  schema: JsonSchema;
  value: unknown;
  onChange: (value: unknown) => void;
  problems?: Problem[];
  label?: string;
  idPrefix?: string;
}) {
  const { schema, value, onChange } = props;
  const problems = props.problems ?? [];
  const idPrefix = props.idPrefix ?? "sf";
  const { schema: top } = unwrapNullable(schema, schema);
  const kind = formType(top, schema);
  if (kind === "object" && top.properties) {
    return (
      <div className="sf">
        <Problems id={`${idPrefix}-root-error`} problems={problems} path="" />
        <ObjectFields
          schema={top}
          root={schema}
          label={props.label ?? "Body"}
          path=""
          required
          value={value ?? {}}
          onChange={onChange}
          problems={problems}
          idPrefix={idPrefix}
        />
      </div>
    );
  }
  return (
    <div className="sf">
      <SchemaField
        schema={schema}
        root={schema}
        label={props.label ?? "Body"}
        path=""
        required
        value={value}
        onChange={onChange}
        problems={problems}
        idPrefix={idPrefix}
      />
    </div>
  );
}
