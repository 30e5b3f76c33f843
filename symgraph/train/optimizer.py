"""The Optimizer base class: gradients, slot variables, and one update op per apply.

Updates are ordinary graph ops (assign, assign_add, assign_sub and arithmetic), so every device
runs them. Within a run, each variable's tensor gives its value from before that run's
assignments (the executor reads it once, ahead of the updates created after it), so gradients and
slot updates both see the pre-update values, as in TF1.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from symgraph import dtypes as _dt
from symgraph.graph import Graph, Node, Tensor, convert_to_tensor
from symgraph.ops.elementwise import cast
from symgraph.ops.shape_ops import zeros
from symgraph.ops.state import constant, group
from symgraph.variables import GraphKeys, Variable, is_variable

GradsAndVars = list[tuple[Tensor | None, Variable]]


def _gradients(loss: Tensor, var_list: list, grad_loss: Any) -> list:
    # Autodiff lives in compiler/, which imports symgraph; the public face binds
    # `symgraph.gradients` once both are imported, so going through it keeps imports one-way.
    import symgraph

    return symgraph.gradients(loss, var_list, grad_ys=grad_loss)


class Optimizer:
    """Base of the optimizers (TF1's `tf.train.Optimizer`).

    Subclasses define `_create_slots(var_list)`, `_apply_dense(grad, var) -> op`, and may define
    `_finish(update_ops, name)` (Adam's beta powers). Hyperparameters given to `_set_hyper` may
    be Python numbers, scalar tensors or zero-argument callables returning either.
    """

    GATE_NONE, GATE_OP, GATE_GRAPH = 0, 1, 2

    def __init__(self, use_locking: bool, name: str) -> None:
        if not name:
            raise ValueError("an optimizer needs a name")
        self._name = name
        self._use_locking = use_locking
        self._hyper_values: dict[str, Any] = {}
        self._hyper_cache: dict[tuple[str, _dt.DType], Tensor] = {}
        self._slots: dict[str, dict[Node, Variable]] = {}
        self._non_slots: dict[tuple[str, Graph], Variable] = {}

    def get_name(self) -> str:
        return self._name

    # -- the three public steps ----------------------------------------------------------------
    def minimize(self, loss: Tensor, global_step: Variable | None = None,
                 var_list: Iterable[Variable] | None = None, gate_gradients: int = GATE_OP,
                 aggregation_method: Any = None, colocate_gradients_with_ops: bool = False,
                 name: str | None = None, grad_loss: Any = None) -> Node:
        """compute_gradients then apply_gradients; returns the update operation."""
        grads_and_vars = self.compute_gradients(loss, var_list=var_list, grad_loss=grad_loss)
        if all(g is None for g, _ in grads_and_vars):
            names = ", ".join(v.var_name for _, v in grads_and_vars)
            raise ValueError(f"no gradients for any variable [{names}] from the loss "
                             f"{loss.describe()}: check that the loss depends on them through "
                             "differentiable ops")
        return self.apply_gradients(grads_and_vars, global_step=global_step, name=name)

    def compute_gradients(self, loss: Tensor, var_list: Iterable[Variable] | None = None,
                          gate_gradients: int = GATE_OP, aggregation_method: Any = None,
                          colocate_gradients_with_ops: bool = False,
                          grad_loss: Any = None) -> GradsAndVars:
        """[(gradient or None, variable)] of `loss` for `var_list` (default: trainable ones)."""
        if not isinstance(loss, Tensor):
            raise TypeError(f"the loss must be a tensor, got {type(loss).__name__}")
        if not loss.dtype.is_floating:
            raise TypeError(f"the loss must be floating, got {loss.describe()}")
        if var_list is None:
            var_list = loss.graph.get_collection(GraphKeys.TRAINABLE_VARIABLES)
        else:
            var_list = list(var_list)
        if not var_list:
            raise ValueError(f"no variables to optimize for the loss {loss.describe()}")
        for v in var_list:
            if not is_variable(v):
                what = v.describe() if isinstance(v, Tensor) else repr(v)
                raise TypeError(f"var_list must hold variables, got {what}")
        grads = _gradients(loss, var_list, grad_loss)
        return list(zip(grads, var_list))

    def apply_gradients(self, grads_and_vars: Iterable[tuple[Any, Variable]],
                        global_step: Variable | None = None, name: str | None = None) -> Node:
        """One operation that applies every (gradient, variable) update, then (if given)
        increments `global_step` by one after all the updates."""
        pairs: GradsAndVars = []
        for g, v in grads_and_vars:
            if not is_variable(v):
                what = v.describe() if isinstance(v, Tensor) else repr(v)
                raise TypeError(f"apply_gradients needs (gradient, variable) pairs; got {what}")
            if g is not None:
                g = convert_to_tensor(g, graph=v.graph)
                if g.dtype != v.dtype or not g.shape.is_compatible_with(v.shape):
                    raise ValueError(f"the gradient {g.describe()} does not fit the variable "
                                     f"{v.describe()}")
            pairs.append((g, v))
        if not pairs:
            raise ValueError("apply_gradients got no (gradient, variable) pairs")
        var_list = [v for g, v in pairs if g is not None]
        if not var_list:
            names = ", ".join(v.var_name for _, v in pairs)
            raise ValueError(f"no gradients provided for any variable: [{names}]")
        graph = var_list[0].graph
        with graph.as_default():
            with graph.name_scope(None), graph.control_dependencies(None):
                self._create_slots(var_list)
            with graph.name_scope(name or self._name) as scope:
                self._hyper_cache = {}
                update_ops = []
                for g, v in pairs:
                    if g is None:
                        continue
                    with graph.name_scope("update_" + v.var_name):
                        update_ops.append(_as_op(self._apply_dense(g, v)))
                if global_step is None:
                    return self._finish(update_ops, scope)
                finish = self._finish(update_ops, "update")
                with graph.control_dependencies([finish]):
                    return global_step.assign_add(1, name=scope).node

    def _finish(self, update_ops: list[Node], name: str) -> Node:
        return group(*update_ops, name=name)

    def _create_slots(self, var_list: list[Variable]) -> None:
        pass

    def _apply_dense(self, grad: Tensor, var: Variable) -> Any:
        raise NotImplementedError

    # -- hyperparameters -----------------------------------------------------------------------
    def _set_hyper(self, name: str, value: Any) -> None:
        if isinstance(value, Tensor) and value.shape.rank not in (0, None):
            raise ValueError(f"the hyperparameter {name} must be a scalar, got {value.describe()}")
        self._hyper_values[name] = value

    def _hyper(self, name: str, dtype: _dt.DType) -> Tensor:
        """The hyperparameter as a tensor of the variable's dtype (cast as TF1 does)."""
        key = (name, dtype)
        t = self._hyper_cache.get(key)
        if t is None:
            value = self._hyper_values[name]
            if callable(value) and not isinstance(value, Tensor):
                value = value()
            if isinstance(value, Tensor):
                t = value if value.dtype == dtype else cast(value, dtype)
            else:
                t = constant(value, dtype=dtype, name=name)
            self._hyper_cache[key] = t
        return t

    # -- slots ---------------------------------------------------------------------------------
    def _get_or_make_slot(self, var: Variable, make_initial: Callable[[], Any], slot_name: str,
                          op_name: str) -> Variable:
        """A non-trainable variable shaped like `var`, named 'var/op_name' (then '_1', ...)."""
        slots = self._slots.setdefault(slot_name, {})
        slot = slots.get(var.node)
        if slot is None:
            graph = var.graph
            with graph.as_default(), graph.name_scope(None), graph.control_dependencies(None):
                slot = Variable(make_initial, trainable=False, name=f"{var.var_name}/{op_name}",
                                dtype=var.dtype, collections=[GraphKeys.GLOBAL_VARIABLES])
            slots[var.node] = slot
        return slot

    def _zeros_slot(self, var: Variable, slot_name: str, op_name: str) -> Variable:
        return self._get_or_make_slot(var, lambda: zeros(var.shape, var.dtype), slot_name,
                                      op_name)

    def _constant_slot(self, var: Variable, value: float, slot_name: str,
                       op_name: str) -> Variable:
        return self._get_or_make_slot(
            var, lambda: constant(value, dtype=var.dtype, shape=var.shape), slot_name, op_name)

    def get_slot(self, var: Variable, name: str) -> Variable | None:
        """The slot variable `name` ('m', 'momentum', ...) made for `var`, or None."""
        return self._slots.get(name, {}).get(var.node)

    def get_slot_names(self) -> list[str]:
        return sorted(self._slots)

    def _create_non_slot_variable(self, initial_value: float, name: str,
                                  colocate_with: Variable) -> Variable:
        """A variable of the optimizer itself (Adam's beta powers), one per graph."""
        graph = colocate_with.graph
        key = (name, graph)
        var = self._non_slots.get(key)
        if var is None:
            with graph.as_default(), graph.name_scope(None), graph.control_dependencies(None):
                var = Variable(constant(initial_value, dtype=colocate_with.dtype), name=name,
                               trainable=False, collections=[GraphKeys.GLOBAL_VARIABLES])
            self._non_slots[key] = var
        return var

    def _get_non_slot_variable(self, name: str, graph: Graph) -> Variable | None:
        return self._non_slots.get((name, graph))

    def variables(self) -> list[Variable]:
        """Every variable this optimizer made (slots and its own), in creation order."""
        made = [v for slots in self._slots.values() for v in slots.values()]
        made += list(self._non_slots.values())
        return sorted(made, key=lambda v: v.node.id)


def _as_op(x: Any) -> Node:
    if isinstance(x, Node):
        return x
    if isinstance(x, Tensor):
        return x.node
    raise TypeError(f"an update rule must return an operation or a tensor, got {x!r}")
