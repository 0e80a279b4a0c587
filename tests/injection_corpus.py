"""Template-injection payloads that every front end must refuse.

``PAYLOADS`` are used as a block's ``content``, ``CONDITION_PAYLOADS`` as a block's ``condition`` (with
harmless content). Compiling a prompt holding any one of them, with no variables passed, must fail with
``CompileError`` (``compile_error``) quickly, and the error must not carry a traceback, a memory address
or the repr of an internal object. They read no variables except names a host must never provide
(``config``, ``request``, ``lipsum``), so passing ordinary variables does not change the outcome.

Groups: sandbox escapes (dunder walks, globals of helpers, format-string attribute walks), mutation of
lists and dicts, resource exhaustion (string/list repetition, huge integers, ranges, nested loops,
recursion, amplifying string methods and filters, buffers), printing internal objects (whose repr would
leak addresses and break determinism), and loading other templates.
"""

from __future__ import annotations

__all__ = ["CONDITION_PAYLOADS", "FORBIDDEN_IN_MESSAGES", "PAYLOADS"]

PAYLOADS: list[str] = [
    # --- sandbox escapes: attribute walks to classes, globals and builtins
    "{{ ''.__class__ }}",
    "{{ ''.__class__.__mro__ }}",
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ ().__class__.__base__.__subclasses__() }}",
    "{{ [].__class__.__base__.__subclasses__()[0] }}",
    "{{ cycler.__init__.__globals__ }}",
    "{{ joiner.__init__.__globals__.os }}",
    "{{ namespace.__init__.__globals__ }}",
    "{{ lipsum.__globals__ }}",
    "{{ lipsum(n=100000) }}",
    "{{ self.__init__.__globals__ }}",
    "{{ self._TemplateReference__context }}",
    "{{ self.__dict__ }}",
    "{{ range.__globals__ }}",
    "{{ dict.__base__.__subclasses__() }}",
    "{{ config }}",
    "{{ config.items() }}",
    "{{ request }}",
    "{{ request.application.__globals__ }}",
    "{{ ''.format.__globals__ }}",
    "{{ ''|attr('__class__') }}",
    "{{ (''|attr('__class__')|attr('__mro__'))[1] }}",
    "{{ ''['__class__'] }}",
    "{{ ['']|map(attribute='__class__')|list }}",
    "{% set x = namespace() %}{{ x.__dict__ }}",
    "{% macro m() %}{% endmacro %}{{ m._func.__globals__ }}",
    # --- format-string tricks
    "{{ '{0.__class__}'.format(1) }}",
    "{{ '{0.__class__.__base__.__subclasses__}'.format('') }}",
    "{{ '{0[__class__]}'.format('') }}",
    "{{ '{x.__class__}'.format_map({'x': 1}) }}",
    "{{ '%s' % cycler }}",
    "{{ '%r' % (range,) }}",
    "{{ '%s'|format(self) }}",
    "{{ '{}'.format(namespace) }}",
    # --- mutation of lists and dicts (the sandbox is immutable)
    "{{ [].append(1) }}",
    "{{ {}.update(a=1) }}",
    "{% set d = {'a': 1} %}{{ d.pop('a') }}",
    "{% set d = {'a': 1} %}{{ dict.update(d, a=2) }}{{ d }}",
    "{% set l = [1] %}{{ l.clear() }}",
    # --- resource exhaustion
    "{{ 'a' * 10**7 }}",
    "{{ [0] * 10**7 }}",
    "{{ 2 ** 100000 }}",
    "{{ 99999 ** 99999 }}",
    "{{ (2 ** 6000) * (2 ** 6000) }}",
    "{{ (10 ** 1000) ** (10 ** 1000) }}",
    "{{ range(10**9)|list }}",
    "{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}",
    "{% for i in range(10000) %}{% for j in range(10000) %}{% endfor %}{% endfor %}",
    "{% for i in range(10000) %}{{ 'x' * 100000 }}{% endfor %}",
    "{% set x %}{% for i in range(10000) %}{{ 'x' * 100000 }}{% endfor %}{% endset %}{{ x|length }}",
    "{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}",
    "{% macro f(n) %}{% if n %}{{ f(n - 1) }}{{ f(n - 1) }}{% endif %}{% endmacro %}{{ f(40) }}",
    "{% set ns = namespace(s='x' * 100000) %}{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}"
    "{% endfor %}{{ ns.s|length }}",
    "{% set ns = namespace(l=[]) %}{% for i in range(10000) %}{% set ns.l = ns.l + ['x' * 100000] %}"
    "{% endfor %}{{ ns.l|length }}",
    "{{ [[1] * 100000] * 100000 }}",
    "{{ ([[1] * 100000] * 100000)|string|length }}",
    "{{ ([[1] * 100000] * 100000)|sum(start=[])|length }}",
    "{{ ([1] * 100000)|tojson(indent=1000000000) }}",
    "{{ 'x'.center(10**9) }}",
    "{{ 'x'.ljust(1000000000) }}",
    "{{ 'x'.zfill(1000000000) }}",
    "{{ ('\\t' * 100000).expandtabs(100000) }}",
    "{{ 'x'|center(1000000000) }}",
    "{{ 'x'|indent(1000000000, true) }}",
    "{{ ('x' * 100000).replace('x', 'y' * 100000) }}",
    "{{ ('x' * 100000)|replace('x', 'y' * 100000) }}",
    "{{ ''.join(['x' * 100000] * 100000) }}",
    "{{ (['x' * 100000] * 100000)|join }}",
    "{{ ('x' * 100000)|wordwrap(1, wrapstring='y' * 100000) }}",
    "{{ '{:>999999999}'.format(1) }}",
    "{{ '{0:{1}}'.format(1, 999999999) }}",
    "{{ ('{0}' * 100000).format('x' * 100000) }}",
    "{{ '%0999999999d' % 1 }}",
    "{{ '%*d' % (999999999, 1) }}",
    "{{ ('%(a)s' * 100000) % {'a': 'x' * 100000} }}",
    "{{ '%s'|format('x' * 100000) * 100 }}",
    "{{ [1]|batch(1000000000, 0)|list }}",
    "{{ [1]|slice(1000000000)|list }}",
    "{{ (1).to_bytes(1000000000, 'big') }}",
    "{{ 'x'.encode() * 10**8 }}",
    "{{ 'x'.translate({120: 'y' * 100000}) }}",
    # --- work done while parsing (constant folding would run these before any bound applies)
    "{{ " + " ~ ".join(["('x'|center(999999))"] * 200) + " }}",
    "{{ (" + " ~ ".join(["('y'|center(999999))"] * 200) + ")|length }}",
    "{{ " + "(" * 5000 + "1" + ")" * 5000 + " }}",
    "{% for i in [1] %}" * 30 + "x" + "{% endfor %}" * 30,
    # --- printing internal objects (repr leaks addresses, breaks determinism)
    "{{ range }}",
    "{{ cycler }}",
    "{{ namespace }}",
    "{{ self }}",
    "{{ [1, 2]|map('string') }}",
    "{{ {'a': 1}.items() }}",
    "{{ range(3) }}",
    "{{ cycler('a', 'b') }}",
    "{{ [range] }}",
    "{{ range|string }}",
    "{{ [cycler]|tojson }}",
    "{{ 'x' ~ range }}",
    # --- loading other templates
    "{% include 'secrets.txt' %}",
    "{% extends 'base.html' %}",
    "{% import 'macros.j2' as m %}",
    "{% from 'macros.j2' import m %}",
]

CONDITION_PAYLOADS: list[str] = [
    "''.__class__",
    "''.__class__.__mro__[1].__subclasses__()",
    "().__class__.__base__.__subclasses__()",
    "cycler.__init__.__globals__",
    "self.__init__.__globals__",
    "lipsum.__globals__",
    "config",
    "request",
    "''|attr('__class__')",
    "'{0.__class__}'.format(1)",
    "[].append(1)",
    "{}.update(a=1)",
    "'a' * 10**7",
    "2 ** 100000",
    "range(10**9)|list",
    "(range(10000)|list) * 10000",
    "'x'.center(1000000000)",
    "(1).to_bytes(1000000000, 'big')",
    "'%0999999999d' % 1",
    "1 +",
    "x }} {{ y",
]

#: Substrings no refusal message may contain.
FORBIDDEN_IN_MESSAGES: list[str] = ["Traceback", " at 0x", 'File "', "<class ", "<function ", "<built-in"]
