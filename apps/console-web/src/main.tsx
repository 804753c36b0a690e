import '@patternfly/react-core/dist/styles/base.css';
import { StrictMode, useEffect, useState } from 'react';
import { createRoot } from 'react-dom/client';
import { Button, Masthead, MastheadBrand, MastheadContent, MastheadMain, Nav, NavItem, NavList, Page, PageSidebar, PageSidebarBody } from '@patternfly/react-core';
import { token, whenUnauthenticated } from './api';
import { navigate, useLocation } from './router';
import { LoginPage } from './pages/login';
import { ClustersPage } from './pages/clusters';
import { HostsPage } from './pages/hosts';
import { VmsPage } from './pages/vms';
import { MigrationPage, MigrationsPage } from './pages/migrations';
import { EvacuationPage, EvacuationsPage } from './pages/evacuations';
import { ReconciliationPage } from './pages/reconciliation';

const sections = [
  { path: '/clusters', title: 'Clusters' },
  { path: '/hosts', title: 'Hosts' },
  { path: '/vms', title: 'VMs' },
  { path: '/migrations', title: 'Migrations' },
  { path: '/evacuations', title: 'Evacuations' },
  { path: '/reconciliation', title: 'Reconciliation' },
];

function App() {
  const { path } = useLocation();
  const [reason, setReason] = useState<string | undefined>();
  useEffect(() => {
    whenUnauthenticated((why) => {
      token.clear();
      setReason(why);
      if (location.pathname !== '/login') navigate(`/login?next=${encodeURIComponent(location.pathname)}`);
    });
  }, []);
  if (path === '/login' || !token.get()) {
    if (path !== '/login') navigate(`/login?next=${encodeURIComponent(path)}`, true);
    return <LoginPage reason={reason} onLogin={() => setReason(undefined)} />;
  }
  if (path === '/') navigate('/clusters', true);
  const masthead = (
    <Masthead>
      <MastheadMain>
        <MastheadBrand>
          <strong style={{ fontSize: '1.25rem' }}>flexmig</strong>
        </MastheadBrand>
      </MastheadMain>
      <MastheadContent>
        <Button variant="secondary" isInline onClick={() => (token.clear(), navigate('/login'))}>
          Log out
        </Button>
      </MastheadContent>
    </Masthead>
  );
  const sidebar = (
    <PageSidebar>
      <PageSidebarBody>
        <Nav aria-label="sections">
          <NavList>
            {sections.map((s) => (
              <NavItem key={s.path} to={s.path} isActive={path.startsWith(s.path)} onClick={(e) => (e.preventDefault(), navigate(s.path))}>
                {s.title}
              </NavItem>
            ))}
          </NavList>
        </Nav>
      </PageSidebarBody>
    </PageSidebar>
  );
  return (
    <Page masthead={masthead} sidebar={sidebar}>
      {route(path)}
    </Page>
  );
}

function route(path: string) {
  const [, section, id] = path.split('/');
  switch (section) {
    case 'hosts':
      return <HostsPage />;
    case 'vms':
      return <VmsPage />;
    case 'migrations':
      return id ? <MigrationPage id={decodeURIComponent(id)} /> : <MigrationsPage />;
    case 'evacuations':
      return id ? <EvacuationPage id={decodeURIComponent(id)} /> : <EvacuationsPage />;
    case 'reconciliation':
      return <ReconciliationPage />;
    default:
      return <ClustersPage />;
  }
}

createRoot(document.getElementById('root')!).render(
  <StrictMode>
    <App />
  </StrictMode>,
);
