package main

import (
	"html/template"
	"net/http"
	"strings"
)

// demoHeader is a request header shown on the demo page.
type demoHeader struct {
	Name, Value, What string
}

// demoView is what the demo page shows.
type demoView struct {
	Backend string       // the backend that answered
	Added   []demoHeader // headers Gatehouse wrote, with what they say
	Client  []demoHeader // the others, as the browser sent them
	Cookie  string       // the sticky cookie's name
	Admin   string       // the status page's URL; "" when unknown
}

// gatehouseHeaders are the request headers Gatehouse writes itself, in
// the order the page lists them, with what they tell the backend.
var gatehouseHeaders = []demoHeader{
	{Name: "X-Forwarded-For", What: "the client's address as Gatehouse saw it; a chain the client sent is replaced unless it came through a trusted proxy"},
	{Name: "X-Real-Ip", What: "the client's address, alone"},
	{Name: "X-Forwarded-Proto", What: "the scheme the client used (Django: SECURE_PROXY_SSL_HEADER)"},
	{Name: "X-Forwarded-Host", What: "the Host the client asked for"},
	{Name: "X-Forwarded-Port", What: "the port the client connected to"},
	{Name: "X-Request-Id", What: "this request's ID: it is in the access log line and on error pages too"},
}

func demoPageData(backend string, r *http.Request, keys []string, admin string) demoView {
	v := demoView{Backend: backend, Cookie: "SERVERID", Admin: admin}
	ours := map[string]bool{}
	for _, h := range gatehouseHeaders {
		ours[h.Name] = true
		if vv := r.Header[h.Name]; len(vv) > 0 {
			h.Value = strings.Join(vv, ", ")
			v.Added = append(v.Added, h)
		}
	}
	for _, k := range keys {
		if !ours[k] {
			v.Client = append(v.Client, demoHeader{Name: k, Value: strings.Join(r.Header[k], ", ")})
		}
	}
	return v
}

var demoPage = template.Must(template.New("demo").Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Gatehouse demo: {{.Backend}}</title>
<style>
body{font:15px/1.5 system-ui,sans-serif;max-width:56rem;margin:2rem auto;padding:0 1rem;color:#222}
h1{font-size:1.5rem}h2{font-size:1.15rem;margin-top:2rem}code,pre{font:13px ui-monospace,monospace;background:#f3f3f3;padding:.1rem .3rem}
table{border-collapse:collapse;width:100%}td,th{text-align:left;vertical-align:top;padding:.25rem .5rem;border-bottom:1px solid #ddd}
td.v{font:13px ui-monospace,monospace;word-break:break-all}.b{font-weight:600;color:#064}
#log{background:#f3f3f3;min-height:3rem;padding:.5rem;white-space:pre-wrap;font:13px ui-monospace,monospace}
</style></head>
<body>
<h1>Answered by <span class="b">{{.Backend}}</span></h1>
<p>You are looking at a page made by <b>{{.Backend}}</b>, one of the two demo backends
(stand-ins for Daphne) that <code>gatehouse demo</code> started. Your browser talked to
Gatehouse over HTTPS (a self-signed certificate, hence the warning); Gatehouse chose a
backend, forwarded the request to it over plain HTTP with the headers below, and
passed its answer back.</p>

<h2>The sticky cookie</h2>
<p>With the first answer Gatehouse set a cookie, <code>{{.Cookie}}</code>, naming the backend
that answered: reload and <b>{{.Backend}}</b> answers again (HAProxy's
<code>cookie {{.Cookie}} insert indirect nocache</code>). Gatehouse takes the cookie out
of the request before forwarding it, so the backend never sees it, and it is
<code>HttpOnly</code>, so this page's script cannot read it either: look in your browser's
developer tools (Storage, Cookies), or run</p>
<pre>curl -k -c - -o /dev/null https://localhost:8443/</pre>
<p>Delete the cookie and reload: round robin picks a backend again.</p>

<h2>Headers Gatehouse added</h2>
<table>
{{range .Added}}<tr><th>{{.Name}}</th><td class="v">{{.Value}}</td><td>{{.What}}</td></tr>
{{end}}</table>
<p>Gatehouse also removed the hop-by-hop headers (<code>Connection</code>, <code>Keep-Alive</code>,
<code>TE</code>, ...) and any <code>X-Forwarded-*</code> the client made up.</p>

<h2>Headers your browser sent</h2>
<table>
{{range .Client}}<tr><th>{{.Name}}</th><td class="v">{{.Value}}</td></tr>
{{end}}</table>

<h2>Try</h2>
<ul>
<li><a href="/events/">/events/</a>: server-sent events, five, a second apart; Gatehouse passes
each on as it comes (no buffering). <button id="sse">Listen here</button></li>
<li>WebSocket echo at <code>/ws/echo</code> (a route with <code>websocket.enabled</code>): the
backend greets you, then echoes. <input id="msg" value="hello" size="12"> <button id="ws">Send</button></li>
<li>{{if .Admin}}<a href="{{.Admin}}">The status page</a> on the admin listener
(<code>{{.Admin}}</code>, loopback only){{else}}The status page, on the admin listener
(loopback only){{end}}: both backends, their load, health checks and latency, with a
Drain button; <code>/metrics</code> there has the same as Prometheus metrics.</li>
</ul>
<div id="log"></div>
<script>
(function(){
  var log=document.getElementById("log");
  function say(s){log.textContent+=s+"\n";}
  document.getElementById("sse").onclick=function(){
    var es=new EventSource("/events/");
    es.onmessage=function(e){say("event: "+e.data);};
    es.onerror=function(){es.close();say("(events stream ended)");};
  };
  var ws=null;
  document.getElementById("ws").onclick=function(){
    var text=document.getElementById("msg").value;
    if(ws&&ws.readyState===1){ws.send(text);return;}
    ws=new WebSocket((location.protocol==="https:"?"wss://":"ws://")+location.host+"/ws/echo");
    ws.onmessage=function(e){say("websocket: "+e.data);};
    ws.onopen=function(){ws.send(text);};
    ws.onclose=function(){say("(websocket closed)");};
  };
})();
</script>
</body></html>
`))
