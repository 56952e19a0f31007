import { createContext } from "react";

export const EditorContext = createContext(null);
export const IssuesContext = createContext({ byNode: new Map(), byPort: new Map(), list: [] });
