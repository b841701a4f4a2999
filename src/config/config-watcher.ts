import { watch, type FSWatcher } from 'node:fs';
import path from 'node:path';

/**
 * Calls `onChange` after the config file changes, once per burst of writes (editors write a file in
 * several steps, or replace it by a rename). Watches the directory so a replaced file is still seen.
 */
export function watchConfigFile(file: string, onChange: () => void, debounceMs = 200): () => void {
  const resolved = path.resolve(file);
  const base = path.basename(resolved);
  let timer: NodeJS.Timeout | undefined;
  let watcher: FSWatcher | undefined;
  try {
    watcher = watch(path.dirname(resolved), { persistent: false }, (_event, name) => {
      if (name !== null && name !== base) return;
      if (timer) clearTimeout(timer);
      timer = setTimeout(onChange, debounceMs);
    });
    watcher.on('error', () => undefined);
  } catch {
    // No watcher on this file system: SIGHUP and the admin route still reload.
  }
  return () => {
    if (timer) clearTimeout(timer);
    watcher?.close();
  };
}
