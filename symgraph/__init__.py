"""symgraph: a define-then-run deep-learning compiler with TensorFlow 1's API.

    import symgraph as sg
    x = sg.placeholder(sg.float32, [None, 3])
    w = sg.Variable(sg.ones([3, 1]))
    y = sg.reduce_sum(x @ w)
    dw, = sg.gradients(y, [w])
    with sg.Session() as sess:
        sess.run(sg.global_variables_initializer())
        print(sess.run(dw, {x: [[1, 2, 3]]}))
"""

from symgraph import errors, losses, nn
from symgraph.dtypes import (
    DType,
    as_dtype,
    float16,
    float32,
    float64,
    int8,
    int16,
    int32,
    int64,
    uint8,
)
from symgraph.dtypes import bool_ as bool  # noqa: A001 - TF1's name: sg.bool
from symgraph.graph import (
    Graph,
    Node,
    Tensor,
    control_dependencies,
    convert_to_tensor,
    get_default_graph,
    name_scope,
    reset_default_graph,
)
from symgraph.ops.elementwise import (
    abs,  # noqa: A004
    add,
    add_n,
    cast,
    clip_by_value,
    cos,
    divide,
    equal,
    exp,
    expm1,
    floordiv,
    floormod,
    greater,
    greater_equal,
    identity,
    less,
    less_equal,
    log,
    log1p,
    logical_and,
    logical_not,
    logical_or,
    maximum,
    minimum,
    mod,
    multiply,
    negative,
    not_equal,
    ones_like,
    pow,  # noqa: A004
    reciprocal,
    rsqrt,
    sigmoid,
    sign,
    sin,
    sqrt,
    square,
    stop_gradient,
    subtract,
    tanh,
    truediv,
    where,
    zeros_like,
)
from symgraph.ops.linalg import matmul
from symgraph.ops.reduce import (
    argmax,
    argmin,
    one_hot,
    reduce_max,
    reduce_mean,
    reduce_min,
    reduce_prod,
    reduce_sum,
)
from symgraph.ops.shape_ops import (
    broadcast_like,
    broadcast_to,
    concat,
    expand_dims,
    fill,
    ones,
    pad,
    reshape,
    reshape_like,
    shape,
    size,
    squeeze,
    stack,
    tile,
    transpose,
    zeros,
)
from symgraph.ops.state import constant, group, no_op, placeholder, placeholder_with_default
from symgraph.ops.state import tuple_ as tuple  # noqa: A001 - TF1's name: sg.tuple
from symgraph.printing import summary
from symgraph.registry import REGISTRY, OpDef, OpKind
from symgraph.session_context import get_default_session
from symgraph.shapes import TensorShape
from symgraph.variables import (
    GraphKeys,
    Variable,
    add_to_collection,
    assign,
    assign_add,
    assign_sub,
    get_collection,
    global_variables,
    global_variables_initializer,
    initialize_all_variables,
    trainable_variables,
    variables_initializer,
)

from symgraph import clip_ops, initializers, regularizers, train
from symgraph.clip_ops import clip_by_global_norm, clip_by_norm, global_norm
from symgraph.initializers import (
    constant_initializer,
    glorot_normal_initializer,
    glorot_uniform_initializer,
    ones_initializer,
    random_normal_initializer,
    random_uniform_initializer,
    truncated_normal_initializer,
    variance_scaling_initializer,
    zeros_initializer,
)
from symgraph.ops import random
from symgraph.ops.random import random_normal, random_uniform, set_random_seed, truncated_normal
from symgraph.variable_scope import (
    AUTO_REUSE,
    VariableScope,
    get_variable,
    get_variable_scope,
    variable_scope,
)
from symgraph import layers
from symgraph import datasets
from symgraph import debugging
from symgraph import cuda
from symgraph.debugging import check_numerics
from symgraph.profiling import RunMetadata, RunOptions
from symgraph.viz import to_dot, visualize

# The public face re-exports the compiler's and runtime's entry points, after its own modules.
from compiler.autodiff import gradients
from runtime.session import InteractiveSession, Session

newaxis = None
Operation = Node

__version__ = "0.1.0"
