/** Grafana provisioning: the Prometheus datasource and a file provider for the dashboards kept in monitoring/. */
import { readFileSync } from 'node:fs';
import { stringify } from 'yaml';

/** The uid every dashboard panel names, so a provisioned dashboard never depends on a datasource's display name. */
export const DATASOURCE_UID = 'chatmirror-prometheus';
export const DASHBOARDS_DIR = new URL('../../monitoring/grafana/dashboards/', import.meta.url);
export const DASHBOARD_FILES = ['chatmirror.json'];

export function renderDatasources(options: { prometheusUrl: string; scrapeIntervalSeconds: number }): string {
  return stringify({
    apiVersion: 1,
    // Provisioning owns the datasource: one removed from this file is removed from Grafana too.
    deleteDatasources: [],
    datasources: [
      {
        name: 'Prometheus',
        uid: DATASOURCE_UID,
        type: 'prometheus',
        access: 'proxy',
        url: options.prometheusUrl,
        isDefault: true,
        editable: false,
        jsonData: { timeInterval: `${options.scrapeIntervalSeconds}s`, httpMethod: 'POST' },
      },
    ],
  });
}

export function renderDashboardProvider(options: { path: string }): string {
  return stringify({
    apiVersion: 1,
    providers: [
      {
        name: 'chatmirror',
        orgId: 1,
        folder: 'chatmirror',
        type: 'file',
        disableDeletion: true,
        allowUiUpdates: false,
        updateIntervalSeconds: 60,
        options: { path: options.path, foldersFromFilesStructure: false },
      },
    ],
  });
}

export interface DashboardFile {
  name: string;
  content: string;
}

export function readDashboards(): DashboardFile[] {
  return DASHBOARD_FILES.map((name) => ({
    name,
    content: readFileSync(new URL(name, DASHBOARDS_DIR), 'utf8'),
  }));
}
