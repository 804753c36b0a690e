import { useEffect, useState } from 'react';
import { Button, EmptyState, FormSelect, FormSelectOption, Toolbar, ToolbarContent, ToolbarItem } from '@patternfly/react-core';
import type { OnePage } from './api';
import { LoadState, useLoad } from './common';
import { cursorOf, firstPage, nextPage, previousPage, rangeOf } from './cursor-pages';
import { RowsTable, type Column } from './data-table';

const PER_PAGE = [20, 50, 100, 500];

/**
 * A table of a list the server pages, one page at a time: for the lists that grow without bound (every
 * migration ever run, every evacuation), which DataTable would read whole (up to 20,000 items, a few KB
 * each) at every visit and at every refresh. The server's order and filters stand; "Next page" follows
 * the page's `nextCursor`, "Previous page" goes back to the cursor it came from. `refresh`: a number the
 * page changes to read the page shown again (the live events say the list changed). Give it a `key` of its
 * filters, so that other filters start again from the first page. `onPage`: called with each page read, once
 * it is shown (what the page showed ahead of the server, such as a change it confirmed, can go).
 */
export function PagedTable<T>({ label, columns, rowKey, empty, load, refresh = 0, onPage }: { label: string; columns: Column<T>[]; rowKey: (row: T) => string; empty: string; load: (page: { limit: number; cursor?: string }) => Promise<OnePage<T>>; refresh?: number; onPage?: (page: OnePage<T>) => void }) {
  const [perPage, setPerPage] = useState(PER_PAGE[0]);
  const [at, setAt] = useState(firstPage);
  const page = useLoad(() => load({ limit: perPage, cursor: cursorOf(at) }), [at, perPage, refresh]);
  useEffect(() => {
    if (page.data) onPage?.(page.data);
    // each page once: onPage is a new function at every render of the caller
  }, [page.data]);
  const rows = page.data?.items ?? [];
  const next = page.data?.nextCursor ?? null;
  const { first, last } = rangeOf(at, perPage, rows.length);
  return (
    <>
      <Toolbar>
        <ToolbarContent>
          <ToolbarItem>
            <FormSelect aria-label={`${label} per page`} value={String(perPage)} onChange={(_e, v) => (setPerPage(Number(v)), setAt(firstPage))} style={{ width: 140 }}>
              {PER_PAGE.map((n) => (
                <FormSelectOption key={n} value={String(n)} label={`${n} per page`} />
              ))}
            </FormSelect>
          </ToolbarItem>
          <ToolbarItem align={{ default: 'alignEnd' }}>
            <span aria-label={`${label} shown`} style={{ marginRight: 16 }}>
              {rows.length ? `${first}–${last}` : ''}
            </span>
            <Button variant="secondary" size="sm" isDisabled={at.index === 0} onClick={() => setAt(previousPage(at))}>
              Previous page
            </Button>{' '}
            <Button variant="secondary" size="sm" isDisabled={next === null || page.loading} onClick={() => next !== null && setAt(nextPage(at, next))}>
              Next page
            </Button>
          </ToolbarItem>
        </ToolbarContent>
      </Toolbar>
      <LoadState loaded={page} what={label} />
      {page.error && at.index > 0 && (
        <Button variant="link" onClick={() => setAt(firstPage)}>
          Back to the first page
        </Button>
      )}
      {page.data && <RowsTable label={label} rows={rows} columns={columns} rowKey={rowKey} />}
      {page.data && !rows.length && <EmptyState titleText={at.index === 0 ? empty : 'No more items'} headingLevel="h4" />}
    </>
  );
}

/**
 * A filter a PagedTable's list takes on the server: one of `values`, or '' for all of them (`all` names it).
 * Give the table a `key` of the value, so that another filter starts again from the first page.
 */
export function FilterSelect({ label, value, values, all, onChange }: { label: string; value: string; values: readonly string[]; all: string; onChange: (value: string) => void }) {
  return (
    <FormSelect value={value} onChange={(_e, v) => onChange(v)} aria-label={label} style={{ maxWidth: 300, margin: '16px 0' }}>
      {['', ...values].map((v) => (
        <FormSelectOption key={v} value={v} label={v || all} />
      ))}
    </FormSelect>
  );
}
