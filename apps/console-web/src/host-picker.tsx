import { useEffect } from 'react';
import type { HostListItem } from '@flexmig/contracts';
import { FormHelperText, HelperText, HelperTextItem, TextInput } from '@patternfly/react-core';
import { onePage } from './api';
import { useLoad } from './common';

/** How many hosts a picker suggests: one page of the server's, never the whole fleet. */
export const HOST_SUGGESTIONS = 100;

/** How a suggested host reads: its id, highest mode, state and maintenance. */
const hostLabel = (h: HostListItem) => `${h.id} (${h.maxImcMode ?? 'no mode'}, ${h.state}${h.maintenance ? ', maintenance' : ''})`;

/**
 * A host id field that suggests one page of hosts (the first HOST_SUGGESTIONS by id, of `clusterId` when
 * given; `suggest` says which of them) and takes any host id typed: a picker on a fleet of 1,000 hosts does
 * not read them all. The server checks the id it is sent (an unknown host is its 404, shown by the caller).
 * `onSuggested`: the hosts suggested, once read (a form picks its default among them).
 */
export function HostPicker({ id, value, onChange, clusterId, suggest = () => true, placeholder, onSuggested }: { id: string; value: string; onChange: (hostId: string) => void; clusterId?: string; suggest?: (h: HostListItem) => boolean; placeholder?: string; onSuggested?: (hosts: HostListItem[]) => void }) {
  const page = useLoad(() => onePage<HostListItem>('/api/v1/hosts', { clusterId }, { limit: HOST_SUGGESTIONS }), [clusterId]);
  const hosts = (page.data?.items ?? []).filter(suggest);
  const note = page.error ? `no hosts suggested (${page.error}); a host id typed still works` : page.data?.nextCursor ? `the first ${HOST_SUGGESTIONS} hosts by id are suggested; type any host's id` : undefined;
  useEffect(() => {
    if (page.data) onSuggested?.(hosts);
    // only when a page arrives: the callback and the filter are new at every render
  }, [page.data]);
  return (
    <>
      <TextInput id={id} value={value} onChange={(_e, v) => onChange(v.trim())} list={`${id}-suggested`} placeholder={placeholder} autoComplete="off" />
      <datalist id={`${id}-suggested`}>
        {hosts.map((h) => (
          <option key={h.id} value={h.id} label={hostLabel(h)} />
        ))}
      </datalist>
      {note && (
        <FormHelperText>
          <HelperText>
            <HelperTextItem variant={page.error ? 'error' : 'default'}>{note}</HelperTextItem>
          </HelperText>
        </FormHelperText>
      )}
    </>
  );
}
