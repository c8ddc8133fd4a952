"""Reports: one self-contained HTML page that shows the work of a compile or an evaluation.

Data flows one way: a page is built from what an artifact or a result already holds (a context
dict, `compile_page` and `eval_page`), then rendered through a jinja2 template
(`templates/*.html.j2`, autoescaped). No page makes an LM call or loads anything at view time:
the program graph and the chart are inline SVG, the styles inline CSS.
"""
