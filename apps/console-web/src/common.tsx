import { useCallback, useEffect, useState } from 'react';
import { Alert, Label, Progress, ProgressMeasureLocation, ProgressVariant, Spinner } from '@patternfly/react-core';
import { ApiError } from './api';

export interface Loaded<T> {
  data: T | undefined;
  error: string | undefined;
  /** 404 from the server: the route or the thing does not exist (pages say which). */
  notFound: boolean;
  loading: boolean;
  reload: () => void;
}

/** Loads once, and again on `reload()` or when `deps` change. */
export function useLoad<T>(load: () => Promise<T>, deps: unknown[] = []): Loaded<T> {
  const [state, setState] = useState<{ data?: T; error?: string; notFound: boolean; loading: boolean }>({ notFound: false, loading: true });
  const [tick, setTick] = useState(0);
  useEffect(() => {
    let live = true;
    setState((s) => ({ ...s, loading: true }));
    load().then(
      (data) => live && setState({ data, notFound: false, loading: false }),
      (e: unknown) => live && setState({ error: describe(e), notFound: e instanceof ApiError && e.status === 404, loading: false }),
    );
    return () => {
      live = false;
    };
  }, [tick, ...deps]);
  const reload = useCallback(() => setTick((t) => t + 1), []);
  return { data: state.data, error: state.error, notFound: state.notFound, loading: state.loading, reload };
}

export const describe = (e: unknown) => (e instanceof ApiError ? `${e.message} (${e.status} ${e.code})` : e instanceof Error ? e.message : String(e));

export function LoadState({ loaded, what }: { loaded: Loaded<unknown>; what: string }) {
  if (loaded.error) return <Alert variant="danger" isInline title={`Could not load ${what}`}>{loaded.error}</Alert>;
  if (loaded.loading && loaded.data === undefined) return <Spinner size="lg" aria-label={`loading ${what}`} />;
  return null;
}

export const formatMiB = (mib: number) => (mib >= 1024 ? `${(mib / 1024).toFixed(mib % 1024 ? 1 : 0)} GiB` : `${mib} MiB`);
export const formatBytes = (b: number) => formatMiB(Math.round(b / 2 ** 20));
export function formatDuration(ms: number | null | undefined): string {
  if (ms === null || ms === undefined) return '';
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  return `${Math.floor(ms / 60_000)} min ${Math.round((ms % 60_000) / 1000)} s`;
}

const stateColor: Record<string, 'green' | 'red' | 'blue' | 'orange' | 'grey'> = {
  up: 'green',
  down: 'red',
  running: 'blue',
  queued: 'grey',
  completed: 'green',
  'rolled-back': 'orange',
  cancelled: 'grey',
  'failed-needs-attention': 'red',
  failed: 'red',
};
export const StateLabel = ({ state }: { state: string }) => <Label color={stateColor[state] ?? 'grey'}>{state}</Label>;

export function Bar({ value, title, state }: { value: number; title: string; state?: string }) {
  const variant = state === 'completed' ? ProgressVariant.success : state && ['rolled-back', 'failed-needs-attention', 'cancelled'].includes(state) ? ProgressVariant.danger : undefined;
  return <Progress value={Math.max(0, Math.min(100, value))} title={title} measureLocation={ProgressMeasureLocation.outside} variant={variant} aria-label={title} />;
}
