import { types } from 'pg';

/** PostgreSQL's type oid of `timestamptz` (every time column of flexmig's schemas). */
export const TIMESTAMPTZ_OID = 1184;

/** The pg driver's own parser (postgres-date): what any text the fast path does not take goes to. */
const driverParse = types.getTypeParser(TIMESTAMPTZ_OID, 'text') as (text: string) => Date | number | null;

/** `text[i]` as a digit, or -1. */
const digit = (text: string, i: number): number => {
  const d = text.charCodeAt(i) - 48;
  return d >= 0 && d <= 9 ? d : -1;
};
/** Two digits at `i` as a number, or -1. */
const two = (text: string, i: number): number => {
  const a = digit(text, i);
  const b = digit(text, i + 1);
  return a < 0 || b < 0 ? -1 : a * 10 + b;
};

/**
 * A `timestamptz` as PostgreSQL sends it in text (DateStyle ISO, the default), read into a Date without a
 * regular expression: `YYYY-MM-DD HH:MM:SS[.ffffff]±HH[:MM[:SS]]`. The pg driver's parser (postgres-date)
 * runs three regular expressions and several `parseInt`s per value; walking pages of VMs (three times per
 * VM) it was a fifth of inventory's CPU and a third of what each page allocated (docs/scale.md). Any
 * other text (a year before 100 or after 9999, BC, `infinity`, another DateStyle) goes to the driver's
 * parser, so the result is the driver's for every text (timestamps.spec.ts compares them).
 */
export function parseTimestamptz(text: string): Date | number | null {
  const n = text.length;
  if (n < 22 || text.charCodeAt(4) !== 45 || text.charCodeAt(7) !== 45 || text.charCodeAt(10) !== 32 || text.charCodeAt(13) !== 58 || text.charCodeAt(16) !== 58) {
    return driverParse(text);
  }
  const century = two(text, 0);
  const yy = two(text, 2);
  const month = two(text, 5);
  const day = two(text, 8);
  const hour = two(text, 11);
  const minute = two(text, 14);
  const second = two(text, 17);
  if (century < 1 || yy < 0 || month < 0 || day < 0 || hour < 0 || minute < 0 || second < 0) return driverParse(text); // years 0–99: Date.UTC reads them as 19xx
  let i = 19;
  let ms = 0;
  if (text.charCodeAt(i) === 46) {
    // the fraction's first three digits are the milliseconds; the rest is truncated, as the driver does
    i += 1;
    const start = i;
    for (let d = digit(text, i); d >= 0; d = digit(text, ++i)) if (i - start < 3) ms = ms * 10 + d;
    const digits = i - start;
    if (digits === 0) return driverParse(text);
    if (digits < 3) ms *= digits === 1 ? 100 : 10;
  }
  const sign = text.charCodeAt(i);
  if (sign !== 43 && sign !== 45) return driverParse(text);
  const oh = two(text, i + 1);
  if (oh < 0) return driverParse(text);
  let offset = oh * 3600;
  i += 3;
  if (i < n) {
    const om = text.charCodeAt(i) === 58 ? two(text, i + 1) : -1; // ±HH:MM
    if (om < 0) return driverParse(text);
    offset += om * 60;
    i += 3;
  }
  if (i < n) {
    const os = text.charCodeAt(i) === 58 ? two(text, i + 1) : -1; // ±HH:MM:SS, a zone's local mean time before 1900
    if (os < 0) return driverParse(text);
    offset += os;
    i += 3;
  }
  if (i !== n) return driverParse(text);
  const utc = Date.UTC(century * 100 + yy, month - 1, day, hour, minute, second, ms);
  return new Date(sign === 45 ? utc + offset * 1000 : utc - offset * 1000);
}

/**
 * The type parsers of a service's connections (pg's `types` option, per pool: the driver's global table is
 * left alone): `timestamptz` by parseTimestamptz, every other type as the driver parses it.
 */
export const serviceTypeParsers = {
  getTypeParser: (oid: number, format?: 'text' | 'binary'): unknown =>
    oid === TIMESTAMPTZ_OID && (format ?? 'text') === 'text' ? parseTimestamptz : types.getTypeParser(oid, format ?? 'text'),
};
