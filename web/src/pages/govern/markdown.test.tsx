import { render } from "@testing-library/react";
import { describe, expect, it } from "vitest";

import { Markdown, safeUrl } from "./markdown";

function html(source: string, headingBase?: number): HTMLElement {
  return render(<Markdown source={source} headingBase={headingBase} />).container;
}

describe("the markdown renderer", () => {
  it("renders headings, paragraphs, lists, code and emphasis as elements", () => {
    const root = html(
      [
        "# Title",
        "",
        "Some *emphasis*, **strong**, `code` and ~~gone~~.",
        "A second line of the same paragraph.",
        "",
        "- one",
        "- two",
        "",
        "3. three",
        "4. four",
        "",
        "```python",
        "print('hi')",
        "```",
        "",
        "> quoted",
        "",
        "---",
      ].join("\n"),
    );
    expect(root.querySelector("h3")?.textContent).toBe("Title"); // `#` is h3 by default
    const paragraph = root.querySelector("p")!;
    expect(paragraph.querySelector("em")?.textContent).toBe("emphasis");
    expect(paragraph.querySelector("strong")?.textContent).toBe("strong");
    expect(paragraph.querySelector("code")?.textContent).toBe("code");
    expect(paragraph.querySelector("del")?.textContent).toBe("gone");
    expect(paragraph.textContent).toContain("A second line");
    expect([...root.querySelectorAll("ul > li")].map((li) => li.textContent)).toEqual(["one", "two"]);
    const ordered = root.querySelector("ol")!;
    expect(ordered.getAttribute("start")).toBe("3");
    expect(ordered.querySelectorAll("li")).toHaveLength(2);
    expect(root.querySelector("pre code")?.textContent).toBe("print('hi')");
    expect(root.querySelector("blockquote p")?.textContent).toBe("quoted");
    expect(root.querySelector("hr")).not.toBeNull();
  });

  it("honours the heading base and caps at h6", () => {
    const root = html("# a\n\n###### b", 4);
    expect(root.querySelector("h4")?.textContent).toBe("a");
    expect(root.querySelector("h6")?.textContent).toBe("b");
  });

  it("never turns HTML in the source into elements", () => {
    const root = html(
      [
        "<script>window.hacked = true</script>",
        "",
        '<img src="x" onerror="window.hacked = true">',
        "",
        "**<b>bold?</b>** and `<i>code</i>`",
        "",
        "```",
        "<iframe src=\"https://evil.example\"></iframe>",
        "```",
      ].join("\n"),
    );
    expect(root.querySelector("script, img, b, i, iframe")).toBeNull();
    expect(root.textContent).toContain("<script>window.hacked = true</script>");
    expect(root.textContent).toContain('<img src="x" onerror="window.hacked = true">');
    expect(root.querySelector("strong")?.textContent).toBe("<b>bold?</b>");
    expect(root.querySelector("pre code")?.textContent).toContain("<iframe");
    expect((window as unknown as { hacked?: boolean }).hacked).toBeUndefined();
  });

  it("links only http, https and mailto, opening safely", () => {
    const root = html(
      "[good](https://example.com/a) [mail](mailto:a@example.com) [bad](javascript:alert(1)) [data](data:text/html;base64,PHNjcmlwdD4=)",
    );
    const links = [...root.querySelectorAll("a")];
    expect(links.map((a) => a.getAttribute("href"))).toEqual(["https://example.com/a", "mailto:a@example.com"]);
    expect(links[0].getAttribute("rel")).toContain("noopener");
    expect(root.textContent).toContain("[bad](javascript:alert(1)");
    expect(safeUrl("JaVaScRiPt:alert(1)")).toBe(false);
    expect(safeUrl(" https://x.example")).toBe(true);
  });

  it("keeps underscores inside words as text", () => {
    const root = html("snake_case_name and _real emphasis_");
    expect(root.querySelectorAll("em")).toHaveLength(1);
    expect(root.textContent).toContain("snake_case_name");
  });
});
