// The dashboard's script, written here (no build step): draws the statistics and the map of
// open hazards with Apache ECharts from the JSON the page carries (#dashboard-data). The
// page's figures and street table stand without it; a street on the map opens its open cases.
(function () {
  var el = document.getElementById('dashboard-data');
  if (!el || !window.echarts) return;
  var d = JSON.parse(el.textContent);
  var s = d.statistics;
  var charts = [];
  function chart(id, option) {
    var node = document.getElementById(id);
    if (!node) return null;
    var c = echarts.init(node);
    c.setOption(option);
    charts.push(c);
    return c;
  }
  window.addEventListener('resize', function () {
    charts.forEach(function (c) { c.resize(); });
  });
  function label(zh, en) { return zh && en ? zh + ' ' + en : zh || en || ''; }
  function bars(title, names, series) {
    return {
      title: { text: title, textStyle: { fontSize: 14 } },
      tooltip: { trigger: 'axis' },
      legend: { top: 30 },
      grid: { top: 70, left: 8, right: 16, bottom: 8, containLabel: true },
      xAxis: { type: 'value', minInterval: 1 },
      yAxis: { type: 'category', data: names, inverse: true },
      series: series.map(function (x) { return { name: x[0], type: 'bar', data: x[1] }; })
    };
  }

  chart('chart-trend', {
    title: { text: '近六个月 / Last six months', textStyle: { fontSize: 14 } },
    tooltip: { trigger: 'axis' },
    legend: { top: 30 },
    grid: { top: 70, left: 8, right: 16, bottom: 8, containLabel: true },
    xAxis: { type: 'category', data: d.trend.map(function (t) { return t.month; }) },
    yAxis: { type: 'value', minInterval: 1 },
    series: [
      ['发现 Found', 'found'], ['整改 Fixed', 'fixed'], ['逾期 Overdue', 'overdue']
    ].map(function (x) {
      return { name: x[0], type: 'line', data: d.trend.map(function (t) { return t[x[1]]; }) };
    })
  });

  var cats = s.by_category;
  chart('chart-category', bars('按隐患类别 / By hazard category',
    cats.map(function (c) { return label(c.zh, c.en) || c.category; }), [
      ['发现 Found', cats.map(function (c) { return c.found; })],
      ['整改 Fixed', cats.map(function (c) { return c.fixed; })],
      ['逾期 Overdue', cats.map(function (c) { return c.overdue; })]
    ]));

  var deps = s.departments;
  chart('chart-departments', bars('部门移交与受理 / Referrals by department',
    deps.map(function (x) { return x.name || ('#' + x.department_id); }), [
      ['移交 Referred', deps.map(function (x) { return x.referred; })],
      ['按时受理 Accepted in time', deps.map(function (x) { return x.accepted_in_sla; })],
      ['退回 Returned', deps.map(function (x) { return x.returned; })]
    ]));

  var dist = s.grades.distribution;
  chart('chart-stars', {
    title: { text: '星级分布 / Units by stars', textStyle: { fontSize: 14 } },
    tooltip: { trigger: 'item' },
    legend: { top: 30 },
    series: [{
      type: 'pie', radius: ['35%', '65%'], top: 50,
      data: Object.keys(dist).map(function (k) {
        return { name: k + '星 / ' + k + ' stars', value: dist[k] };
      })
    }]
  });

  // The map: the streets' outlines (unions of their grids) registered as an ECharts map,
  // coloured by open cases; no tiles are needed.
  var shaped = d.map.features.filter(function (f) { return f.geometry; });
  if (!shaped.length) return;
  echarts.registerMap('anju-streets', { type: 'FeatureCollection', features: shaped });
  var most = Math.max.apply(null, shaped.map(function (f) { return f.properties.open; }).concat([1]));
  var map = chart('chart-map', {
    tooltip: {
      trigger: 'item',
      formatter: function (p) {
        // ECharts shows a formatter's string as HTML: names are escaped first.
        var esc = echarts.format.encodeHTML;
        return p.data ? esc(p.data.street) + '：' + p.data.value + ' 未办结 / open' : esc(p.name);
      }
    },
    visualMap: {
      min: 0, max: most, calculable: true, left: 8, bottom: 8,
      text: ['多 More', '少 Fewer'], inRange: { color: ['#e6f4ea', '#fdbf6f', '#d7301f'] }
    },
    series: [{
      type: 'map', map: 'anju-streets', nameProperty: 'key', roam: true,
      label: { show: true, fontSize: 10, formatter: function (p) { return p.data ? p.data.street : ''; } },
      data: shaped.map(function (f) {
        return { name: f.properties.key, value: f.properties.open, street: f.properties.name, street_id: f.properties.street_id };
      })
    }]
  });
  if (map) {
    map.on('click', function (p) {
      if (p.data && p.data.street_id != null) {
        location.href = '/?street_id=' + p.data.street_id + '&open=true';
      }
    });
  }
})();
