// A tiny markdown renderer that builds React elements, never HTML strings: headings,
// paragraphs, lists, block quotes, rules, fenced code, inline code, emphasis, strong, strike and
// links (http, https and mailto only). Everything else, HTML included, stays text: React escapes
// it, so a session log or report cannot inject markup or script.
import type { ReactNode } from "react";

const FENCE = /^\s{0,3}(```+|~~~+)\s*([\w+-]*)\s*$/;
const HEADING = /^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$/;
const RULE = /^\s{0,3}([-*_])(?:\s*\1){2,}\s*$/;
const QUOTE = /^\s{0,3}>\s?(.*)$/;
const BULLET = /^\s{0,3}[-*+]\s+(.*)$/;
const NUMBERED = /^\s{0,3}(\d{1,9})[.)]\s+(.*)$/;

function startsBlock(line: string): boolean {
  return (
    FENCE.test(line) ||
    HEADING.test(line) ||
    RULE.test(line) ||
    QUOTE.test(line) ||
    BULLET.test(line) ||
    NUMBERED.test(line)
  );
}

/** Whether `url` may be a link: http, https and mailto only (no javascript:, data:, …). */
export function safeUrl(url: string): boolean {
  return /^(https?:\/\/|mailto:)/i.test(url.trim());
}

const INLINE =
  /`([^`]+)`|\*\*(.+?)\*\*|__(.+?)__|~~(.+?)~~|\[([^\]]+)\]\(([^)\s]+)\)|\*([^*\s](?:[^*]*?[^*\s])?)\*|(?<![\p{L}\p{N}])_([^_\s](?:[^_]*?[^_\s])?)_(?![\p{L}\p{N}])/gu;

/** The inline content of `text` as React nodes. */
export function inline(text: string, key = "i"): ReactNode[] {
  const out: ReactNode[] = [];
  let last = 0;
  let n = 0;
  const pattern = new RegExp(INLINE.source, INLINE.flags); // own state: inline() recurses
  let found: RegExpExecArray | null;
  while ((found = pattern.exec(text)) !== null) {
    if (found.index > last) out.push(text.slice(last, found.index));
    const k = `${key}.${n++}`;
    const [whole, code, strong1, strong2, strike, label, url, em1, em2] = found;
    if (code !== undefined) out.push(<code key={k}>{code}</code>);
    else if (strong1 !== undefined || strong2 !== undefined)
      out.push(<strong key={k}>{inline(strong1 ?? strong2, k)}</strong>);
    else if (strike !== undefined) out.push(<del key={k}>{inline(strike, k)}</del>);
    else if (label !== undefined && url !== undefined) {
      out.push(
        safeUrl(url) ? (
          <a key={k} href={url} target="_blank" rel="noopener noreferrer nofollow">
            {inline(label, k)}
          </a>
        ) : (
          whole
        ),
      );
    } else if (em1 !== undefined || em2 !== undefined)
      out.push(<em key={k}>{inline(em1 ?? em2, k)}</em>);
    else out.push(whole);
    last = found.index + whole.length;
  }
  if (last < text.length) out.push(text.slice(last));
  return out;
}

type Options = { headingBase: number };

/** The blocks of `source` as React elements. */
export function blocks(source: string, options: Options = { headingBase: 3 }, key = "b"): ReactNode[] {
  const lines = source.replace(/\r\n?/g, "\n").split("\n");
  const out: ReactNode[] = [];
  let i = 0;
  let n = 0;
  while (i < lines.length) {
    const line = lines[i];
    const k = `${key}.${n++}`;
    if (!line.trim()) {
      i++;
      continue;
    }
    const fence = FENCE.exec(line);
    if (fence) {
      const body: string[] = [];
      i++;
      while (i < lines.length && !(lines[i].trim().startsWith(fence[1]) && lines[i].trim().replace(/[`~]/g, "") === "")) {
        body.push(lines[i]);
        i++;
      }
      i++; // the closing fence (or the end)
      out.push(
        <pre key={k} tabIndex={0} aria-label={fence[2] ? `${fence[2]} code` : "code"}>
          <code>{body.join("\n")}</code>
        </pre>,
      );
      continue;
    }
    const heading = HEADING.exec(line);
    if (heading) {
      const level = Math.min(6, heading[1].length + options.headingBase - 1);
      const Tag = `h${level}` as "h1" | "h2" | "h3" | "h4" | "h5" | "h6";
      out.push(<Tag key={k}>{inline(heading[2], k)}</Tag>);
      i++;
      continue;
    }
    if (RULE.test(line)) {
      out.push(<hr key={k} />);
      i++;
      continue;
    }
    if (QUOTE.test(line)) {
      const body: string[] = [];
      while (i < lines.length && QUOTE.test(lines[i])) {
        body.push(QUOTE.exec(lines[i])![1]);
        i++;
      }
      out.push(<blockquote key={k}>{blocks(body.join("\n"), options, k)}</blockquote>);
      continue;
    }
    const ordered = NUMBERED.test(line);
    if (ordered || BULLET.test(line)) {
      const item = ordered ? NUMBERED : BULLET;
      const items: string[] = [];
      const start = ordered ? Number(NUMBERED.exec(line)![1]) : 1;
      while (i < lines.length) {
        const current = item.exec(lines[i]);
        if (current) {
          items.push(current[ordered ? 2 : 1]);
        } else if (lines[i].trim() && /^\s+/.test(lines[i]) && items.length) {
          items[items.length - 1] += ` ${lines[i].trim()}`; // a continuation line
        } else {
          break;
        }
        i++;
      }
      const children = items.map((text, index) => <li key={`${k}.${index}`}>{inline(text, `${k}.${index}`)}</li>);
      out.push(
        ordered ? (
          <ol key={k} start={start === 1 ? undefined : start}>
            {children}
          </ol>
        ) : (
          <ul key={k}>{children}</ul>
        ),
      );
      continue;
    }
    const paragraph: string[] = [];
    while (i < lines.length && lines[i].trim() && (paragraph.length === 0 || !startsBlock(lines[i]))) {
      paragraph.push(lines[i].trim());
      i++;
    }
    out.push(<p key={k}>{inline(paragraph.join(" "), k)}</p>);
  }
  return out;
}

/** Markdown as React elements; `headingBase` is the level of `#` (3: below the page's h1, h2). */
export function Markdown({ source, headingBase = 3 }: { source: string; headingBase?: number }) {
  return <div className="gv-md">{blocks(source, { headingBase })}</div>;
}
