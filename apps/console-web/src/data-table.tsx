import { useMemo, useState, type ReactNode } from 'react';
import { EmptyState, Pagination, SearchInput, Toolbar, ToolbarContent, ToolbarItem } from '@patternfly/react-core';
import { Table, Tbody, Td, Th, Thead, Tr } from '@patternfly/react-table';

export interface Column<T> {
  title: string;
  cell: (row: T) => ReactNode;
  /** The text search matches (default: none for this column). */
  text?: (row: T) => string;
}

/**
 * A table that stays usable with 10,000 rows: search over the columns' text and paging on the client, so
 * only one page of rows is ever rendered.
 */
export function DataTable<T>({ label, rows, columns, rowKey, empty, perPageDefault = 20 }: { label: string; rows: T[]; columns: Column<T>[]; rowKey: (row: T) => string; empty: string; perPageDefault?: number }) {
  const [search, setSearch] = useState('');
  const [page, setPage] = useState(1);
  const [perPage, setPerPage] = useState(perPageDefault);
  const filtered = useMemo(() => {
    const words = search.toLowerCase().split(/\s+/).filter(Boolean);
    if (!words.length) return rows;
    const texts = columns.filter((c) => c.text);
    return rows.filter((r) => {
      const hay = texts.map((c) => c.text!(r)).join(' ').toLowerCase();
      return words.every((w) => hay.includes(w));
    });
  }, [rows, columns, search]);
  const lastPage = Math.max(1, Math.ceil(filtered.length / perPage));
  const current = Math.min(page, lastPage);
  const shown = filtered.slice((current - 1) * perPage, current * perPage);
  return (
    <>
      <Toolbar>
        <ToolbarContent>
          <ToolbarItem>
            <SearchInput aria-label={`search ${label}`} placeholder={`Search ${label}`} value={search} onChange={(_e, v) => (setSearch(v), setPage(1))} onClear={() => (setSearch(''), setPage(1))} />
          </ToolbarItem>
          <ToolbarItem variant="pagination" align={{ default: 'alignEnd' }}>
            <Pagination itemCount={filtered.length} page={current} perPage={perPage} onSetPage={(_e, p) => setPage(p)} onPerPageSelect={(_e, pp) => (setPerPage(pp), setPage(1))} isCompact />
          </ToolbarItem>
        </ToolbarContent>
      </Toolbar>
      <RowsTable label={label} rows={shown} columns={columns} rowKey={rowKey} />
      {!shown.length && <EmptyState titleText={rows.length ? 'Nothing matches the search' : empty} headingLevel="h4" />}
    </>
  );
}

/** The rows given, each a `data-row` of its key, under the columns' titles: what DataTable and PagedTable show. */
export function RowsTable<T>({ label, rows, columns, rowKey }: { label: string; rows: T[]; columns: Column<T>[]; rowKey: (row: T) => string }) {
  return (
    <Table aria-label={label} variant="compact">
      <Thead>
        <Tr>
          {columns.map((c) => (
            <Th key={c.title}>{c.title}</Th>
          ))}
        </Tr>
      </Thead>
      <Tbody>
        {rows.map((r) => (
          <Tr key={rowKey(r)} data-row={rowKey(r)}>
            {columns.map((c) => (
              <Td key={c.title} dataLabel={c.title}>
                {c.cell(r)}
              </Td>
            ))}
          </Tr>
        ))}
      </Tbody>
    </Table>
  );
}
