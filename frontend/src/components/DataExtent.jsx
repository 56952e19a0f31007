import { useEffect, useMemo, useRef, useState } from "react";
import { geoEquirectangular, geoGraticule10, geoPath } from "d3-geo";
import {
  areaOf,
  areaProblem,
  boxFromCorners,
  daysProblem,
  describeArea,
  hasArea,
  hasDays,
  viewOf,
  withArea,
  withDays,
} from "../extent.js";

// The area and days a block works on, shown against the data's (the server's ``extents``): a map to
// draw the area on (coastlines from Natural Earth via world-atlas, bundled: no tile server is
// reached) and the data's period one click away. The form's fields below stay the exact way in.

const WIDTH = 320;
const HEIGHT = 200;
const MIN_DRAG_PX = 4;

let landPromise = null;
function loadLand() {
  if (!landPromise) {
    landPromise = Promise.all([import("world-atlas/land-110m.json"), import("topojson-client")]).then(
      ([atlas, topojson]) => {
        const topology = atlas.default || atlas;
        return topojson.feature(topology, topology.objects.land);
      },
    );
  }
  return landPromise;
}

function projectionFor(view) {
  const span = Math.max(0.5, view.east - view.west);
  const height = Math.max(0.5, view.north - view.south);
  const scale = Math.min(WIDTH / ((span * Math.PI) / 180), HEIGHT / ((height * Math.PI) / 180));
  return geoEquirectangular()
    .rotate([-(view.west + view.east) / 2, 0])
    .center([0, (view.south + view.north) / 2])
    .scale(scale)
    .translate([WIDTH / 2, HEIGHT / 2])
    .clipExtent([[0, 0], [WIDTH, HEIGHT]]);
}

function Box({ projection, box, className }) {
  const [x1, y1] = projection([box.west, box.north]);
  let [x2, y2] = projection([box.east, box.south]);
  if (x2 < x1) x2 += projection.scale() * 2 * Math.PI; // the box's east edge wrapped past the map's edge
  return <rect className={className} x={x1} y={y1} width={Math.max(1, x2 - x1)} height={Math.max(1, y2 - y1)} />;
}

function AreaMap({ nodeId, extent, params, onParams, readOnly }) {
  const [land, setLand] = useState(null);
  const [world, setWorld] = useState(false);
  const [draft, setDraft] = useState(null);
  const start = useRef(null);
  const area = areaOf(params);
  useEffect(() => {
    let live = true;
    loadLand().then((found) => live && setLand(found)).catch(() => {});
    return () => {
      live = false;
    };
  }, []);
  const view = useMemo(() => viewOf(extent, area, world), [extent, area && JSON.stringify(area), world]); // eslint-disable-line react-hooks/exhaustive-deps
  const projection = useMemo(() => projectionFor(view), [view]);
  const path = useMemo(() => geoPath(projection), [projection]);
  const data = extent && extent.bbox;
  const at = (event) => {
    const svg = event.currentTarget;
    const rect = svg.getBoundingClientRect();
    const point = [((event.clientX - rect.left) / rect.width) * WIDTH, ((event.clientY - rect.top) / rect.height) * HEIGHT];
    return { point, lonlat: projection.invert(point) };
  };
  const handlers = readOnly
    ? {}
    : {
        onPointerDown: (event) => {
          event.currentTarget.setPointerCapture(event.pointerId);
          start.current = at(event);
        },
        onPointerMove: (event) => {
          if (!start.current) return;
          setDraft(boxFromCorners(start.current.lonlat, at(event).lonlat, extent));
        },
        onPointerUp: (event) => {
          const from = start.current;
          start.current = null;
          setDraft(null);
          if (!from) return;
          const to = at(event);
          if (Math.hypot(to.point[0] - from.point[0], to.point[1] - from.point[1]) < MIN_DRAG_PX) return;
          onParams(withArea(params, boxFromCorners(from.lonlat, to.lonlat, extent)));
        },
        onPointerCancel: () => {
          start.current = null;
          setDraft(null);
        },
      };
  const problem = areaProblem(params, extent);
  const described = [
    data ? `The data cover ${describeArea(data)}.` : "Where the data lie is not known before a run.",
    area ? `Chosen area: ${describeArea(area)}.` : "No area chosen: all of the data.",
  ].join(" ");
  return (
    <div className="extent-area">
      <svg
        className={`extent-map${readOnly ? "" : " drawable"}`}
        viewBox={`0 0 ${WIDTH} ${HEIGHT}`}
        role="img"
        aria-label={`Map of the area. ${described}`}
        data-node={nodeId}
        {...handlers}
      >
        <rect className="extent-sea" width={WIDTH} height={HEIGHT} />
        <path className="extent-graticule" d={path(geoGraticule10()) || ""} />
        {land ? <path className="extent-land" d={path(land) || ""} /> : null}
        {data ? <Box projection={projection} box={data} className="extent-data" /> : null}
        {area ? <Box projection={projection} box={area} className="extent-chosen" /> : null}
        {draft ? <Box projection={projection} box={draft} className="extent-draft" /> : null}
      </svg>
      <p className="extent-text" aria-live="polite">{described}</p>
      {problem ? <p className="field-error" role="alert">{problem}</p> : null}
      {readOnly ? null : (
        <div className="extent-actions">
          <span className="meta">Drag on the map to draw the area, or type its edges below.</span>
          {data ? (
            <button type="button" className="secondary small" onClick={() => onParams(withArea(params, data))}>
              Use the data's whole area
            </button>
          ) : null}
          {area ? (
            <button type="button" className="secondary small" onClick={() => onParams(withArea(params, null))}>
              Clear the area
            </button>
          ) : null}
          <button type="button" className="secondary small" onClick={() => setWorld((current) => !current)} aria-pressed={world}>
            Whole world
          </button>
        </div>
      )}
    </div>
  );
}

function DataDays({ extent, params, onParams, readOnly }) {
  const span = extent && extent.time;
  if (!span) return null;
  const problem = daysProblem(params, extent);
  const whole = params && params.start === span.start && params.end === span.end;
  return (
    <div className="extent-days">
      <p className="extent-text">
        The data cover <strong>{span.start}</strong> to <strong>{span.end}</strong>.
      </p>
      {problem ? <p className="field-error" role="alert">{problem}</p> : null}
      {readOnly || whole ? null : (
        <button type="button" className="secondary small" onClick={() => onParams(withDays(params, span))}>
          Use the whole period
        </button>
      )}
    </div>
  );
}

/** Area and days of a block whose parameters hold them, against what the data cover. */
export default function DataExtent({ nodeId, schema, extent, params, onParams, readOnly }) {
  const area = hasArea(schema);
  const days = hasDays(schema) && extent && extent.time;
  if (!area && !days) return null;
  return (
    <section className="data-extent" aria-label="Area and period">
      {area ? <AreaMap nodeId={nodeId} extent={extent} params={params} onParams={onParams} readOnly={readOnly} /> : null}
      {days ? <DataDays extent={extent} params={params} onParams={onParams} readOnly={readOnly} /> : null}
    </section>
  );
}
