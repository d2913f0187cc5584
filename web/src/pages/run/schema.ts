// The JSON Schema subset the runtime pages understand: types (one, a list, or nullable through
// anyOf/oneOf with null), enum and const, objects (properties, required, additionalProperties),
// arrays (items, minItems, maxItems, uniqueItems), strings (minLength, maxLength, pattern),
// numbers (minimum, maximum, exclusive bounds, multipleOf), allOf/anyOf/oneOf and local `$ref`s
// (`#/$defs/X`, `#/definitions/X`). Pydantic's and Motia's schemas are written in it.

export type JsonSchema = {
  type?: string | string[];
  title?: string;
  description?: string;
  default?: unknown;
  enum?: unknown[];
  const?: unknown;
  properties?: Record<string, JsonSchema>;
  required?: string[];
  additionalProperties?: boolean | JsonSchema;
  items?: JsonSchema | JsonSchema[];
  minItems?: number;
  maxItems?: number;
  uniqueItems?: boolean;
  minLength?: number;
  maxLength?: number;
  pattern?: string;
  format?: string;
  minimum?: number;
  maximum?: number;
  exclusiveMinimum?: number | boolean;
  exclusiveMaximum?: number | boolean;
  multipleOf?: number;
  allOf?: JsonSchema[];
  anyOf?: JsonSchema[];
  oneOf?: JsonSchema[];
  $ref?: string;
  $defs?: Record<string, JsonSchema>;
  definitions?: Record<string, JsonSchema>;
  [key: string]: unknown;
};

/** One reason a value does not match: where (a JSON pointer, `""` for the whole value) and why. */
export type Problem = { path: string; message: string };

export function isSchema(value: unknown): value is JsonSchema {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** The schema a local `$ref` points at (`#/$defs/OrderItem`), or null when it cannot be found. */
export function lookup(ref: string, root: JsonSchema): JsonSchema | null {
  if (ref === "#") return root;
  if (!ref.startsWith("#/")) return null;
  let node: unknown = root;
  for (const raw of ref.slice(2).split("/")) {
    const part = decodeURIComponent(raw).replace(/~1/g, "/").replace(/~0/g, "~");
    if (!isSchema(node)) return null;
    node = node[part];
  }
  return isSchema(node) ? node : null;
}

/** `schema` with its `$ref` chain followed (siblings of `$ref` are kept, the target wins none). */
export function resolve(schema: JsonSchema | undefined, root: JsonSchema): JsonSchema {
  let current: JsonSchema = schema ?? {};
  const seen = new Set<string>();
  while (current.$ref && !seen.has(current.$ref)) {
    seen.add(current.$ref);
    const target = lookup(current.$ref, root);
    if (!target) break;
    const { $ref: _ignored, ...siblings } = current;
    void _ignored;
    current = { ...target, ...siblings };
  }
  return current;
}

/** The non-null branch of a nullable schema (`anyOf: [X, {type: null}]`, `type: [X, "null"]`). */
export function unwrapNullable(schema: JsonSchema, root: JsonSchema): { schema: JsonSchema; nullable: boolean } {
  const resolved = resolve(schema, root);
  for (const key of ["anyOf", "oneOf"] as const) {
    const branches = resolved[key];
    if (Array.isArray(branches) && branches.length === 2) {
      const nonNull = branches.filter((b) => resolve(b, root).type !== "null");
      if (nonNull.length === 1) {
        const { [key]: _branches, ...rest } = resolved;
        void _branches;
        return { schema: { ...rest, ...resolve(nonNull[0], root) }, nullable: true };
      }
    }
  }
  if (Array.isArray(resolved.type)) {
    const types = resolved.type.filter((t) => t !== "null");
    if (types.length === 1) {
      return { schema: { ...resolved, type: types[0] }, nullable: resolved.type.includes("null") };
    }
  }
  return { schema: resolved, nullable: false };
}

/** The one type a form can edit the schema with, or null (a raw JSON field does then). */
export function formType(schema: JsonSchema, root: JsonSchema): string | null {
  const { schema: s } = unwrapNullable(schema, root);
  if (s.enum && s.enum.length) return "enum";
  if (s.const !== undefined) return "enum";
  if (typeof s.type === "string") return s.type;
  if (s.properties) return "object";
  if (s.items) return "array";
  return null;
}

/** A starting value for a form of `schema`: defaults where given, required fields filled. */
export function initialValue(schema: JsonSchema, root: JsonSchema = schema, depth = 0): unknown {
  const { schema: s } = unwrapNullable(schema, root);
  if (s.default !== undefined) return structuredClone(s.default);
  if (s.const !== undefined) return s.const;
  if (s.enum && s.enum.length) return s.enum[0];
  if (depth > 8) return null;
  switch (formType(s, root)) {
    case "object": {
      const value: Record<string, unknown> = {};
      const required = new Set(s.required ?? []);
      for (const [name, prop] of Object.entries(s.properties ?? {})) {
        const p = resolve(prop, root);
        if (required.has(name) || p.default !== undefined) {
          value[name] = initialValue(prop, root, depth + 1);
        }
      }
      return value;
    }
    case "array": {
      const items = Array.isArray(s.items) ? undefined : s.items;
      const count = items ? Math.min(s.minItems ?? 0, 3) : 0;
      return Array.from({ length: count }, () => initialValue(items ?? {}, root, depth + 1));
    }
    case "string":
      return "";
    case "number":
    case "integer": {
      // the least value the bounds allow (an exclusive bound: one step above it)
      const step = s.type === "integer" ? 1 : (s.multipleOf ?? 1);
      const exclusive = s.exclusiveMinimum === true ? s.minimum : s.exclusiveMinimum;
      if (typeof exclusive === "number") return exclusive + step;
      if (s.minimum !== undefined) return s.minimum;
      return s.maximum !== undefined && s.maximum < 0 ? s.maximum : 0;
    }
    case "boolean":
      return false;
    case "null":
      return null;
    default:
      return null;
  }
}

function typeOf(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "array";
  if (typeof value === "number") return Number.isInteger(value) ? "integer" : "number";
  return typeof value;
}

function matchesType(value: unknown, type: string): boolean {
  const actual = typeOf(value);
  if (type === "number") return actual === "number" || actual === "integer";
  return actual === type;
}

function equal(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

function describe(value: unknown): string {
  const text = JSON.stringify(value);
  return text === undefined ? String(value) : text.length > 40 ? `${text.slice(0, 37)}…` : text;
}

export function pointer(base: string, key: string | number): string {
  return `${base}/${String(key).replace(/~/g, "~0").replace(/\//g, "~1")}`;
}

/** A JSON pointer as people read it: `/items/0/sku` → `items[0].sku`, `""` → `(the value)`. */
export function readablePath(path: string): string {
  if (!path) return "(the value)";
  let out = "";
  for (const raw of path.slice(1).split("/")) {
    const part = raw.replace(/~1/g, "/").replace(/~0/g, "~");
    out += /^\d+$/.test(part) ? `[${part}]` : out ? `.${part}` : part;
  }
  return out;
}

/** Every way `value` fails `schema` (empty: it matches), each with its JSON pointer. */
export function validate(schema: JsonSchema, value: unknown, root: JsonSchema = schema): Problem[] {
  const problems: Problem[] = [];
  check(schema, value, root, "", problems, 0);
  return problems;
}

function check(
  raw: JsonSchema | boolean | undefined,
  value: unknown,
  root: JsonSchema,
  path: string,
  out: Problem[],
  depth: number,
): void {
  if (raw === undefined || raw === true) return;
  if (raw === false) {
    out.push({ path, message: "no value is allowed here" });
    return;
  }
  if (depth > 64) return;
  const s = resolve(raw, root);
  if (s.$ref && !lookup(s.$ref, root)) {
    out.push({ path, message: `the schema's reference ${s.$ref} cannot be resolved` });
    return;
  }

  const fits = (branch: JsonSchema): boolean => {
    const found: Problem[] = [];
    check(branch, value, root, path, found, depth + 1);
    return found.length === 0;
  };
  for (const part of s.allOf ?? []) check(part, value, root, path, out, depth + 1);
  if (s.anyOf?.length) {
    const any = s.anyOf.some(fits);
    if (!any) {
      const alone = s.anyOf.length === 1 ? s.anyOf[0] : nonNullBranch(s.anyOf, root, value);
      if (alone) check(alone, value, root, path, out, depth + 1);
      else out.push({ path, message: "matches none of the allowed shapes (anyOf)" });
    }
  }
  if (s.oneOf?.length) {
    const count = s.oneOf.filter(fits).length;
    if (count !== 1) {
      const alone = count === 0 ? nonNullBranch(s.oneOf, root, value) : null;
      if (alone) check(alone, value, root, path, out, depth + 1);
      else
        out.push({
          path,
          message: count === 0 ? "matches none of the allowed shapes (oneOf)" : "matches more than one shape (oneOf)",
        });
    }
  }

  if (s.const !== undefined && !equal(s.const, value)) {
    out.push({ path, message: `must be ${describe(s.const)}` });
  }
  if (s.enum && !s.enum.some((option) => equal(option, value))) {
    out.push({ path, message: `must be one of ${s.enum.map(describe).join(", ")}` });
  }

  const types = s.type === undefined ? null : Array.isArray(s.type) ? s.type : [s.type];
  if (types && !types.some((t) => matchesType(value, t))) {
    const expected = types.join(" or ");
    out.push({
      path,
      message: value === undefined ? "is required" : `must be ${expected}, not ${typeOf(value)}`,
    });
    return; // the other keywords would only repeat the type mismatch
  }

  if (typeof value === "string") {
    const length = [...value].length;
    if (s.minLength !== undefined && length < s.minLength)
      out.push({ path, message: `must be at least ${s.minLength} characters long` });
    if (s.maxLength !== undefined && length > s.maxLength)
      out.push({ path, message: `must be at most ${s.maxLength} characters long` });
    if (s.pattern) {
      try {
        if (!new RegExp(s.pattern, "u").test(value))
          out.push({ path, message: `must match the pattern ${s.pattern}` });
      } catch {
        // a pattern JavaScript cannot read: the server decides
      }
    }
  }

  if (typeof value === "number") {
    if (s.minimum !== undefined && value < s.minimum)
      out.push({ path, message: `must be ≥ ${s.minimum}` });
    if (s.maximum !== undefined && value > s.maximum)
      out.push({ path, message: `must be ≤ ${s.maximum}` });
    const exMin = s.exclusiveMinimum === true ? s.minimum : s.exclusiveMinimum;
    const exMax = s.exclusiveMaximum === true ? s.maximum : s.exclusiveMaximum;
    if (typeof exMin === "number" && value <= exMin) out.push({ path, message: `must be > ${exMin}` });
    if (typeof exMax === "number" && value >= exMax) out.push({ path, message: `must be < ${exMax}` });
    if (s.multipleOf && Math.abs(value / s.multipleOf - Math.round(value / s.multipleOf)) > 1e-9)
      out.push({ path, message: `must be a multiple of ${s.multipleOf}` });
  }

  if (Array.isArray(value)) {
    if (s.minItems !== undefined && value.length < s.minItems)
      out.push({ path, message: `needs at least ${s.minItems} item${s.minItems === 1 ? "" : "s"}` });
    if (s.maxItems !== undefined && value.length > s.maxItems)
      out.push({ path, message: `takes at most ${s.maxItems} item${s.maxItems === 1 ? "" : "s"}` });
    if (s.uniqueItems) {
      const seen = new Set<string>();
      value.forEach((item, index) => {
        const key = JSON.stringify(item);
        if (seen.has(key)) out.push({ path: pointer(path, index), message: "repeats an earlier item" });
        seen.add(key);
      });
    }
    value.forEach((item, index) => {
      const itemSchema = Array.isArray(s.items) ? s.items[index] : s.items;
      check(itemSchema, item, root, pointer(path, index), out, depth + 1);
    });
  }

  if (typeOf(value) === "object") {
    const object = value as Record<string, unknown>;
    for (const name of s.required ?? []) {
      if (object[name] === undefined) out.push({ path: pointer(path, name), message: "is required" });
    }
    const properties = s.properties ?? {};
    for (const [name, item] of Object.entries(object)) {
      if (item === undefined) continue;
      if (name in properties) {
        check(properties[name], item, root, pointer(path, name), out, depth + 1);
      } else if (s.additionalProperties === false) {
        out.push({ path: pointer(path, name), message: "is not an allowed property" });
      } else if (isSchema(s.additionalProperties)) {
        check(s.additionalProperties, item, root, pointer(path, name), out, depth + 1);
      }
    }
  }
}

/** For `X | null` shapes, the branch to report problems against (the value is not null). */
function nonNullBranch(branches: JsonSchema[], root: JsonSchema, value: unknown): JsonSchema | null {
  if (value === null) return null;
  const nonNull = branches.filter((b) => resolve(b, root).type !== "null");
  return nonNull.length === 1 ? nonNull[0] : null;
}

/** `text` parsed as JSON, or the parser's complaint. Empty text is `undefined` (no body). */
export function parseJson(text: string): { ok: true; value: unknown } | { ok: false; error: string } {
  if (!text.trim()) return { ok: true, value: undefined };
  try {
    return { ok: true, value: JSON.parse(text) };
  } catch (error) {
    return { ok: false, error: error instanceof Error ? error.message : String(error) };
  }
}
