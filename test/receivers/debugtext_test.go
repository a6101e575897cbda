package receivers

import (
	"bufio"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// This file reads the text the collector's debugexporter prints at
// verbosity detailed (internal/otlptext in
// go.opentelemetry.io/collector/exporter/debugexporter): one block per
// ResourceSpans/ResourceMetrics, attributes as "     -> key: Type(value)".
// It is pure, so its own test needs no collector.

// dump is everything the collector printed, in order.
type dump struct {
	resources []*dumpResource
}

type dumpResource struct {
	signal  string            // "spans" or "metrics"
	attrs   map[string]string // raw values: Str(walprobe), Int(5432)
	spans   []*dumpSpan
	metrics []*dumpMetric
}

type dumpSpan struct {
	traceID, parentID, id string
	name, kind            string
	status, statusMessage string
	start, end            time.Time
	attrs                 map[string]string
	events                []string
}

type dumpMetric struct {
	name, unit, dataType string
	points               []*dumpPoint
}

type dumpPoint struct {
	attrs map[string]string
	value string // number points: "Value: ..."; histograms: ""
	count string // histogram points
}

var (
	// "    Trace ID       : 5b8a…" (span header fields; the value may be empty)
	spanField = regexp.MustCompile(`^    ([A-Za-z][A-Za-z ]*?)\s*: ?(.*)$`)
	// "     -> key: Str(value)" at the top level only (nested lists indent further)
	attrLine = regexp.MustCompile(`^ {5}-> ([^:]+): (.*)$`)
	// "NumberDataPoints #0", "HistogramDataPoints #3", …
	pointStart = regexp.MustCompile(`^[A-Za-z]*DataPoints #\d+$`)
)

// The debugexporter formats timestamps with time.Time.String in UTC.
const dumpTimeLayout = "2006-01-02 15:04:05.999999999 -0700 MST"

// parseDump reads debugexporter output. Lines it does not know (the
// collector's own log lines, the per-batch summary) are skipped, so it can
// read the collector's whole stdout.
func parseDump(text string) *dump {
	d := &dump{}
	var (
		res     *dumpResource
		sp      *dumpSpan
		m       *dumpMetric
		pt      *dumpPoint
		attrs   map[string]string // where "-> k: v" lines go; nil ignores them
		section string            // "span", "events", "descriptor", "point", ""
	)
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 0, 64*1024), 4*1024*1024)
	for sc.Scan() {
		line := strings.TrimRight(sc.Text(), "\r")
		switch {
		case strings.HasPrefix(line, "ResourceSpans #"), strings.HasPrefix(line, "ResourceMetrics #"):
			res = &dumpResource{signal: "metrics", attrs: map[string]string{}}
			if strings.HasPrefix(line, "ResourceSpans") {
				res.signal = "spans"
			}
			d.resources = append(d.resources, res)
			sp, m, pt, attrs, section = nil, nil, nil, nil, ""
		case res == nil:
			// Before the first resource: collector log lines.
		case line == "Resource attributes:":
			attrs = res.attrs
		case strings.HasPrefix(line, "ScopeSpans #"), strings.HasPrefix(line, "ScopeMetrics #"),
			strings.HasPrefix(line, "InstrumentationScope "), line == "Resource entity refs:":
			attrs, section = nil, ""
		case strings.HasPrefix(line, "Span #"):
			sp = &dumpSpan{attrs: map[string]string{}}
			res.spans = append(res.spans, sp)
			attrs, section = nil, "span"
		case sp != nil && line == "Attributes:":
			attrs, section = sp.attrs, "attrs"
		case sp != nil && line == "Events:":
			attrs, section = nil, "events"
		case sp != nil && line == "Links:":
			attrs, section = nil, "links"
		case sp != nil && section == "events" && strings.HasPrefix(line, "     -> Name: "):
			sp.events = append(sp.events, strings.TrimPrefix(line, "     -> Name: "))
		case section == "span" && spanField.MatchString(line):
			f := spanField.FindStringSubmatch(line)
			setSpanField(sp, f[1], strings.TrimSpace(f[2]))
		case strings.HasPrefix(line, "Metric #"):
			m = &dumpMetric{}
			res.metrics = append(res.metrics, m)
			sp, pt, attrs, section = nil, nil, nil, ""
		case m != nil && line == "Descriptor:":
			attrs, section = nil, "descriptor"
		case section == "descriptor" && attrLine.MatchString(line):
			f := attrLine.FindStringSubmatch(line)
			switch f[1] {
			case "Name":
				m.name = f[2]
			case "Unit":
				m.unit = f[2]
			case "DataType":
				m.dataType = f[2]
			}
		case m != nil && pointStart.MatchString(line):
			pt = &dumpPoint{attrs: map[string]string{}}
			m.points = append(m.points, pt)
			attrs, section = nil, "point"
		case pt != nil && line == "Data point attributes:":
			attrs = pt.attrs
		case pt != nil && strings.HasPrefix(line, "Value: "):
			pt.value = strings.TrimPrefix(line, "Value: ")
			attrs = nil
		case pt != nil && strings.HasPrefix(line, "Count: "):
			pt.count = strings.TrimPrefix(line, "Count: ")
			attrs = nil
		case pt != nil && strings.HasPrefix(line, "StartTimestamp: "):
			attrs = nil
		case attrs != nil && attrLine.MatchString(line):
			f := attrLine.FindStringSubmatch(line)
			attrs[f[1]] = f[2]
		}
	}
	return d
}

func setSpanField(sp *dumpSpan, k, v string) {
	switch k {
	case "Trace ID":
		sp.traceID = v
	case "Parent ID":
		sp.parentID = v
	case "ID":
		sp.id = v
	case "Name":
		sp.name = v
	case "Kind":
		sp.kind = v
	case "Status code":
		sp.status = v
	case "Status message":
		sp.statusMessage = v
	case "Start time":
		sp.start, _ = time.Parse(dumpTimeLayout, v)
	case "End time":
		sp.end, _ = time.Parse(dumpTimeLayout, v)
	}
}

// byInstance returns the resources whose service.instance.id is id.
func (d *dump) byInstance(id string) []*dumpResource {
	var out []*dumpResource
	for _, r := range d.resources {
		if r.attrs["service.instance.id"] == "Str("+id+")" {
			out = append(out, r)
		}
	}
	return out
}

// attrValue strips the debugexporter's type wrapper: "Str(x)" → "x".
func attrValue(raw string) (typ, v string) {
	i := strings.IndexByte(raw, '(')
	if i < 0 || !strings.HasSuffix(raw, ")") {
		return "", raw
	}
	return raw[:i], raw[i+1 : len(raw)-1]
}

// attrFloat reads a Double or Int attribute.
func attrFloat(raw string) (float64, bool) {
	typ, v := attrValue(raw)
	if typ != "Double" && typ != "Int" {
		return 0, false
	}
	f, err := strconv.ParseFloat(v, 64)
	return f, err == nil
}

// beatTree is a root "beat" span and its children by name.
type beatTree struct {
	root     *dumpSpan
	children map[string][]*dumpSpan
}

// beatTrees groups spans into beat traces: roots are "beat" spans with no
// parent; a child belongs to the root whose span ID is its parent ID in
// the same trace.
func beatTrees(spans []*dumpSpan) []*beatTree {
	byID := map[string]*beatTree{}
	var trees []*beatTree
	for _, s := range spans {
		if s.parentID == "" && s.name == "beat" {
			bt := &beatTree{root: s, children: map[string][]*dumpSpan{}}
			byID[s.traceID+"/"+s.id] = bt
			trees = append(trees, bt)
		}
	}
	for _, s := range spans {
		if s.parentID == "" {
			continue
		}
		if bt, ok := byID[s.traceID+"/"+s.parentID]; ok {
			bt.children[s.name] = append(bt.children[s.name], s)
		}
	}
	return trees
}
