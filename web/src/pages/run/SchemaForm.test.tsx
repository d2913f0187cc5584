import { cleanup, fireEvent, render, screen } from "@testing-library/react";
import { useState } from "react";
import { afterEach, describe, expect, it } from "vitest";

import { SchemaForm } from "./SchemaForm";
import { initialValue, validate } from "./schema";
import type { JsonSchema } from "./schema";

afterEach(cleanup);

const SCHEMA: JsonSchema = {
  $defs: {
    Line: {
      type: "object",
      properties: { sku: { type: "string" }, quantity: { type: "integer", exclusiveMinimum: 0 } },
      required: ["sku", "quantity"],
    },
  },
  type: "object",
  properties: {
    customerId: { type: "string", description: "who orders" },
    rush: { type: "boolean" },
    gift: { type: "boolean", default: false },
    currency: { enum: ["EUR", "USD"] },
    total: { type: "number" },
    tags: { type: "array", items: { type: "string" } },
    address: {
      type: "object",
      properties: { city: { type: "string" }, zip: { type: "string" } },
      required: ["city"],
    },
    lines: { type: "array", items: { $ref: "#/$defs/Line" }, minItems: 1 },
    extra: { anyOf: [{ type: "string" }, { type: "object" }] },
  },
  required: ["customerId", "currency", "lines"],
};

let latest: unknown;

function Harness({ schema = SCHEMA }: { schema?: JsonSchema }) {
  const [value, setValue] = useState<unknown>(() => initialValue(schema));
  latest = value;
  return <SchemaForm schema={schema} value={value} onChange={setValue} problems={validate(schema, value)} />;
}

describe("SchemaForm", () => {
  it("draws a labelled input for each field, with required marks", () => {
    render(<Harness />);
    expect(screen.getByLabelText(/^customerId/).getAttribute("aria-required")).toBe("true");
    expect(screen.getByText("who orders")).toBeTruthy();
    expect(screen.getByLabelText(/^total/).getAttribute("type")).toBe("number");
    expect(screen.getByLabelText(/^total/).getAttribute("aria-required")).toBeNull();
    // an optional boolean without default is a three-way choice; one with a default a checkbox
    expect(screen.getByLabelText(/^rush/).tagName).toBe("SELECT");
    expect(screen.getByLabelText(/^gift/).getAttribute("type")).toBe("checkbox");
    expect(screen.getByText("address")).toBeTruthy();
    expect(screen.getByLabelText(/^extra/).tagName).toBe("TEXTAREA");
    expect(latest).toEqual({ customerId: "", currency: "EUR", gift: false, lines: [{ sku: "", quantity: 1 }] });
  });

  it("edits strings, numbers, enums and booleans into the value", () => {
    render(<Harness />);
    fireEvent.change(screen.getByLabelText(/^customerId/), { target: { value: "c1" } });
    fireEvent.change(screen.getByLabelText(/^total/), { target: { value: "12.5" } });
    fireEvent.change(screen.getByLabelText(/^currency/), { target: { value: "1" } });
    fireEvent.click(screen.getByLabelText(/^gift/));
    fireEvent.change(screen.getByLabelText(/^rush/), { target: { value: "true" } });
    expect(latest).toMatchObject({ customerId: "c1", total: 12.5, currency: "USD", gift: true, rush: true });
    // emptying an optional field removes it
    fireEvent.change(screen.getByLabelText(/^total/), { target: { value: "" } });
    fireEvent.change(screen.getByLabelText(/^rush/), { target: { value: "" } });
    expect(latest).not.toHaveProperty("total");
    expect(latest).not.toHaveProperty("rush");
  });

  it("adds and removes array items and nested objects", () => {
    render(<Harness />);
    fireEvent.click(screen.getByRole("button", { name: "Add to tags" }));
    fireEvent.click(screen.getByRole("button", { name: "Add to tags" }));
    fireEvent.change(screen.getByLabelText(/^tags 1/), { target: { value: "a" } });
    fireEvent.change(screen.getByLabelText(/^tags 2/), { target: { value: "b" } });
    expect((latest as { tags: string[] }).tags).toEqual(["a", "b"]);
    fireEvent.click(screen.getByRole("button", { name: "Remove tags 1" }));
    expect((latest as { tags: string[] }).tags).toEqual(["b"]);

    fireEvent.click(screen.getByRole("button", { name: "Add address" }));
    fireEvent.change(screen.getByLabelText(/^city/), { target: { value: "Lyon" } });
    expect((latest as { address: unknown }).address).toEqual({ city: "Lyon" });
    fireEvent.click(screen.getByRole("button", { name: "Remove address" }));
    expect(latest).not.toHaveProperty("address");

    // arrays of $ref'd objects
    fireEvent.change(screen.getByLabelText(/^sku/), { target: { value: "X1" } });
    fireEvent.change(screen.getByLabelText(/^quantity/), { target: { value: "2" } });
    expect((latest as { lines: unknown[] }).lines).toEqual([{ sku: "X1", quantity: 2 }]);
  });

  it("shows each problem at its field", () => {
    render(<Harness />);
    const quantity = screen.getByLabelText(/^quantity/);
    expect(quantity.getAttribute("aria-invalid")).not.toBe("true"); // starts at the least allowed
    fireEvent.change(quantity, { target: { value: "0" } }); // 0 breaks exclusiveMinimum
    expect(quantity.getAttribute("aria-invalid")).toBe("true");
    const message = document.getElementById(quantity.getAttribute("aria-describedby")!);
    expect(message?.textContent).toBe("must be > 0");
  });

  it("keeps raw JSON fields until they parse", () => {
    render(<Harness />);
    const extra = screen.getByLabelText(/^extra/);
    fireEvent.change(extra, { target: { value: '{"a": ' } });
    expect(screen.getByText(/Not JSON/)).toBeTruthy();
    expect(latest).not.toHaveProperty("extra");
    fireEvent.change(extra, { target: { value: '{"a": 1}' } });
    expect((latest as { extra: unknown }).extra).toEqual({ a: 1 });
  });

  it("draws a lone primitive schema as one field", () => {
    render(<Harness schema={{ type: "integer", minimum: 2 }} />);
    fireEvent.change(screen.getByLabelText(/^Body/), { target: { value: "7" } });
    expect(latest).toBe(7);
  });
});
