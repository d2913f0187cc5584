import { describe, expect, it } from "vitest";

import { formType, initialValue, parseJson, readablePath, resolve, unwrapNullable, validate } from "./schema";
import type { JsonSchema } from "./schema";

// The example project's CreateOrder body schema, as pydantic writes it.
const NEW_ORDER: JsonSchema = {
  $defs: {
    OrderItem: {
      properties: {
        sku: { title: "Sku", type: "string" },
        quantity: { exclusiveMinimum: 0, title: "Quantity", type: "integer" },
        unitPrice: { minimum: 0, title: "Unitprice", type: "number" },
      },
      required: ["sku", "quantity", "unitPrice"],
      title: "OrderItem",
      type: "object",
    },
  },
  properties: {
    customerId: { title: "Customerid", type: "string" },
    items: { items: { $ref: "#/$defs/OrderItem" }, minItems: 1, title: "Items", type: "array" },
    fail: { default: false, title: "Fail", type: "boolean" },
  },
  required: ["customerId", "items"],
  title: "NewOrder",
  type: "object",
};

describe("resolve and unwrap", () => {
  it("follows local $refs", () => {
    expect(resolve({ $ref: "#/$defs/OrderItem" }, NEW_ORDER).title).toBe("OrderItem");
    expect(resolve({ $ref: "#/$defs/Nope" }, NEW_ORDER).$ref).toBe("#/$defs/Nope");
  });

  it("sees through nullable shapes", () => {
    const anyOf = unwrapNullable({ anyOf: [{ type: "integer" }, { type: "null" }] }, {});
    expect(anyOf).toEqual({ schema: { type: "integer" }, nullable: true });
    const list = unwrapNullable({ type: ["string", "null"] }, {});
    expect(list.schema.type).toBe("string");
    expect(list.nullable).toBe(true);
  });

  it("names the form type of each kind of schema", () => {
    expect(formType({ enum: ["a", "b"] }, {})).toBe("enum");
    expect(formType({ properties: {} }, {})).toBe("object");
    expect(formType({ type: "array", items: { type: "string" } }, {})).toBe("array");
    expect(formType({ anyOf: [{ type: "string" }, { type: "integer" }] }, {})).toBeNull();
  });
});

describe("initialValue", () => {
  it("fills required fields and defaults, one item for minItems", () => {
    expect(initialValue(NEW_ORDER)).toEqual({
      customerId: "",
      items: [{ sku: "", quantity: 1, unitPrice: 0 }], // the least quantity the schema allows
      fail: false,
    });
  });

  it("uses enums, consts and minimums", () => {
    expect(initialValue({ enum: ["eur", "usd"] })).toBe("eur");
    expect(initialValue({ const: 3 })).toBe(3);
    expect(initialValue({ type: "integer", minimum: 5 })).toBe(5);
    expect(initialValue({ type: "object", properties: { a: { type: "string" } } })).toEqual({});
  });
});

describe("validate", () => {
  it("accepts a matching value", () => {
    const order = { customerId: "c1", items: [{ sku: "a", quantity: 1, unitPrice: 2.5 }] };
    expect(validate(NEW_ORDER, order)).toEqual([]);
  });

  it("reports every problem with its path", () => {
    const problems = validate(NEW_ORDER, {
      items: [{ sku: 7, quantity: 0, unitPrice: -1 }, { sku: "b", quantity: 1.5 }],
      fail: "no",
    });
    expect(problems).toEqual(
      expect.arrayContaining([
        { path: "/customerId", message: "is required" },
        { path: "/items/0/sku", message: "must be string, not integer" },
        { path: "/items/0/quantity", message: "must be > 0" },
        { path: "/items/0/unitPrice", message: "must be ≥ 0" },
        { path: "/items/1/quantity", message: "must be integer, not number" },
        { path: "/items/1/unitPrice", message: "is required" },
        { path: "/fail", message: "must be boolean, not string" },
      ]),
    );
    expect(problems).toHaveLength(7);
  });

  it("checks arrays, strings, enums and extra properties", () => {
    const schema: JsonSchema = {
      type: "object",
      properties: {
        tags: { type: "array", items: { type: "string" }, minItems: 1, maxItems: 2, uniqueItems: true },
        code: { type: "string", minLength: 2, maxLength: 3, pattern: "^[A-Z]+$" },
        currency: { enum: ["EUR", "USD"] },
      },
      additionalProperties: false,
    };
    expect(validate(schema, { tags: [] })).toEqual([{ path: "/tags", message: "needs at least 1 item" }]);
    expect(validate(schema, { tags: ["a", "a", "b"] })).toEqual([
      { path: "/tags", message: "takes at most 2 items" },
      { path: "/tags/1", message: "repeats an earlier item" },
    ]);
    expect(validate(schema, { code: "a" })).toEqual([
      { path: "/code", message: "must be at least 2 characters long" },
      { path: "/code", message: "must match the pattern ^[A-Z]+$" },
    ]);
    expect(validate(schema, { currency: "GBP", other: 1 })).toEqual([
      { path: "/currency", message: 'must be one of "EUR", "USD"' },
      { path: "/other", message: "is not an allowed property" },
    ]);
  });

  it("checks the whole value's type and nullable fields", () => {
    expect(validate({ type: "object" }, [1])).toEqual([{ path: "", message: "must be object, not array" }]);
    const schema: JsonSchema = {
      type: "object",
      properties: { note: { anyOf: [{ type: "string" }, { type: "null" }] } },
    };
    expect(validate(schema, { note: null })).toEqual([]);
    expect(validate(schema, { note: 3 })).toEqual([{ path: "/note", message: "must be string, not integer" }]);
  });

  it("treats integers as numbers and old-style exclusive bounds", () => {
    expect(validate({ type: "number" }, 3)).toEqual([]);
    expect(validate({ type: "number", minimum: 1, exclusiveMinimum: true }, 1)).toEqual([
      { path: "", message: "must be > 1" },
    ]);
  });
});

describe("helpers", () => {
  it("reads pointers as paths", () => {
    expect(readablePath("")).toBe("(the value)");
    expect(readablePath("/items/0/sku")).toBe("items[0].sku");
    expect(readablePath("/a~1b")).toBe("a/b");
  });

  it("parses JSON text", () => {
    expect(parseJson("")).toEqual({ ok: true, value: undefined });
    expect(parseJson('{"a":1}')).toEqual({ ok: true, value: { a: 1 } });
    expect(parseJson("{").ok).toBe(false);
  });
});
