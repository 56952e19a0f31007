// Undo/redo over whole documents (their serialised text), so undo restores the exact previous
// document. Consecutive edits with the same merge key (typing in one parameter field) coalesce.

export const HISTORY_LIMIT = 200;

export function initHistory(present) {
  return { past: [], present, future: [], mergeKey: null };
}

export function record(history, next, mergeKey = null) {
  if (next === history.present) return history;
  if (mergeKey && mergeKey === history.mergeKey && history.past.length) {
    return { ...history, present: next, future: [] };
  }
  const past = [...history.past, history.present].slice(-HISTORY_LIMIT);
  return { past, present: next, future: [], mergeKey };
}

/** Replace the present without an undo step (e.g. loading a version as the new baseline). */
export function reset(present) {
  return initHistory(present);
}

export function undo(history) {
  if (!history.past.length) return history;
  const previous = history.past[history.past.length - 1];
  return { past: history.past.slice(0, -1), present: previous, future: [history.present, ...history.future], mergeKey: null };
}

export function redo(history) {
  if (!history.future.length) return history;
  const [next, ...future] = history.future;
  return { past: [...history.past, history.present], present: next, future, mergeKey: null };
}

export const canUndo = (history) => history.past.length > 0;
export const canRedo = (history) => history.future.length > 0;
