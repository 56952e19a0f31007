// Who else is editing this pipeline: avatars in the toolbar, and on the canvas each person's
// cursor and the nodes they have selected, in their colour.
import { ViewportPortal } from "@xyflow/react";
import "../collab/collab.css";

const STATUS_TEXT = {
  live: "Live",
  connecting: "Connecting…",
  offline: "Offline: changes kept, merged on reconnect",
};

function initials(name) {
  const words = String(name || "?").trim().split(/[\s._@-]+/).filter(Boolean);
  return ((words[0] || "?")[0] + (words.length > 1 ? words[1][0] : "")).toUpperCase();
}

/** The connection state and one avatar per other person in the room (one per person, not per tab). */
export function PresenceBar({ status, peers, me }) {
  if (status === "off") return null;
  const people = new Map();
  for (const peer of peers) if (!people.has(peer.user.id)) people.set(peer.user.id, peer.user);
  const others = [...people.values()].filter((user) => user.id !== (me && me.id));
  return (
    <div className="collab-presence" role="group" aria-label="People editing this pipeline">
      <span className={`collab-status collab-${status}`} data-testid="collab-status" data-status={status}>{STATUS_TEXT[status] || status}</span>
      <ul className="collab-avatars">
        {others.map((user) => (
          <li key={user.id} className="collab-avatar" style={{ background: user.colour }} title={`${user.name} is ${user.viewing ? "viewing (read-only)" : "editing"}`} data-user={user.name} data-viewing={user.viewing ? "true" : undefined}>
            <span aria-hidden="true">{initials(user.name)}</span>
            <span className="visually-hidden">{user.name}</span>
          </li>
        ))}
      </ul>
      {others.length ? <span className="collab-count">{others.length === 1 ? `${others[0].name} is here` : `${others.length} others here`}</span> : null}
    </div>
  );
}

/** The others' cursors and selections, drawn in flow coordinates (they follow pan and zoom). */
export function PresenceLayer({ peers, nodes }) {
  if (!peers.length) return null;
  const byId = new Map(nodes.map((node) => [node.id, node]));
  return (
    <ViewportPortal>
      {peers.map((peer) =>
        (peer.selection || []).map((id) => {
          const node = byId.get(id);
          if (!node) return null;
          const width = (node.measured && node.measured.width) || 230;
          const height = (node.measured && node.measured.height) || 130;
          return (
            <div
              key={`${peer.clientId}:${id}`}
              className="collab-selection"
              data-testid="collab-selection"
              data-user={peer.user.name}
              style={{ transform: `translate(${node.position.x - 5}px, ${node.position.y - 5}px)`, width: width + 10, height: height + 10, borderColor: peer.user.colour }}
            >
              <span style={{ background: peer.user.colour }}>{peer.user.name}</span>
            </div>
          );
        }),
      )}
      {peers.map((peer) =>
        peer.cursor ? (
          <div
            key={`cursor:${peer.clientId}`}
            className="collab-cursor"
            data-testid="collab-cursor"
            data-user={peer.user.name}
            style={{ transform: `translate(${peer.cursor.x}px, ${peer.cursor.y}px)` }}
          >
            <svg width="18" height="18" viewBox="0 0 18 18" aria-hidden="true">
              <path d="M1 1 L1 15 L5 11 L8 17 L10.5 16 L7.5 10 L13 10 Z" fill={peer.user.colour} stroke="#fff" strokeWidth="1" />
            </svg>
            <span style={{ background: peer.user.colour }}>{peer.user.name}</span>
          </div>
        ) : null,
      )}
    </ViewportPortal>
  );
}
