"""TF1's optimizers, each update written as TF1's kernel computes it (training_ops.cc).

With g the gradient and lr the learning rate (all in the variable's dtype):
  GradientDescent  var -= lr g
  Momentum         accum = mu accum + g; var -= lr accum
                   (nesterov: var -= lr g + lr mu accum, with the new accum)
  RMSProp          ms += (g^2 - ms)(1 - rho); [centered: mg += (g - mg)(1 - rho)]
                   mom = momentum mom + lr g / sqrt(ms [- mg^2] + eps); var -= mom
  Adagrad          accum += g^2; var -= lr g / sqrt(accum)
  Adam             lr_t = lr sqrt(1 - beta2^t) / (1 - beta1^t)
                   m += (g - m)(1 - beta1); v += (g^2 - v)(1 - beta2)
                   var -= lr_t m / (sqrt(v) + eps)            (epsilon outside the sqrt)
Slots are named as in TF1: 'w/Momentum', 'w/RMSProp' (rms), 'w/RMSProp_1' (momentum),
'w/Adagrad', 'w/Adam' (m), 'w/Adam_1' (v); Adam's beta powers are 'beta1_power', 'beta2_power'.
"""

from __future__ import annotations

from typing import Any

from symgraph.graph import Node, Tensor
from symgraph.ops.elementwise import cast, sqrt, square
from symgraph.ops.state import group
from symgraph.train.optimizer import Optimizer
from symgraph.variables import Variable


class GradientDescentOptimizer(Optimizer):
    """var -= learning_rate * g."""

    def __init__(self, learning_rate: Any, use_locking: bool = False,
                 name: str = "GradientDescent") -> None:
        super().__init__(use_locking, name)
        self._set_hyper("learning_rate", learning_rate)

    def _apply_dense(self, grad: Tensor, var: Variable) -> Tensor:
        lr = self._hyper("learning_rate", var.dtype)
        return var.assign_sub(lr * grad)


class MomentumOptimizer(Optimizer):
    """accum = momentum * accum + g; var -= lr * accum (TF1; `use_nesterov` looks ahead)."""

    def __init__(self, learning_rate: Any, momentum: Any, use_locking: bool = False,
                 name: str = "Momentum", use_nesterov: bool = False) -> None:
        super().__init__(use_locking, name)
        self._set_hyper("learning_rate", learning_rate)
        self._set_hyper("momentum", momentum)
        self._use_nesterov = use_nesterov

    def _create_slots(self, var_list: list[Variable]) -> None:
        for v in var_list:
            self._zeros_slot(v, "momentum", self._name)

    def _apply_dense(self, grad: Tensor, var: Variable) -> Tensor:
        lr = self._hyper("learning_rate", var.dtype)
        mu = self._hyper("momentum", var.dtype)
        accum = self.get_slot(var, "momentum")
        accum_t = accum.assign(accum * mu + grad)
        if self._use_nesterov:
            return var.assign_sub(grad * lr + accum_t * mu * lr)
        return var.assign_sub(accum_t * lr)


class RMSPropOptimizer(Optimizer):
    """RMSProp with momentum and the centered variant; ms starts at ones, as in TF1."""

    def __init__(self, learning_rate: Any, decay: Any = 0.9, momentum: Any = 0.0,
                 epsilon: Any = 1e-10, use_locking: bool = False, centered: bool = False,
                 name: str = "RMSProp") -> None:
        super().__init__(use_locking, name)
        self._set_hyper("learning_rate", learning_rate)
        self._set_hyper("decay", decay)
        self._set_hyper("momentum", momentum)
        self._set_hyper("epsilon", epsilon)
        self._centered = centered

    def _create_slots(self, var_list: list[Variable]) -> None:
        for v in var_list:
            self._constant_slot(v, 1.0, "rms", self._name)
            if self._centered:
                self._zeros_slot(v, "mg", self._name)
            self._zeros_slot(v, "momentum", self._name)

    def _apply_dense(self, grad: Tensor, var: Variable) -> Tensor:
        dt = var.dtype
        lr, rho = self._hyper("learning_rate", dt), self._hyper("decay", dt)
        momentum, eps = self._hyper("momentum", dt), self._hyper("epsilon", dt)
        ms, mom = self.get_slot(var, "rms"), self.get_slot(var, "momentum")
        ms_t = ms.assign(ms + (square(grad) - ms) * (1 - rho))
        denom = ms_t
        if self._centered:
            mg = self.get_slot(var, "mg")
            mg_t = mg.assign(mg + (grad - mg) * (1 - rho))
            denom = ms_t - square(mg_t)
        mom_t = mom.assign(mom * momentum + lr * grad / sqrt(denom + eps))
        return var.assign_sub(mom_t)


class AdagradOptimizer(Optimizer):
    """accum += g^2; var -= lr * g / sqrt(accum), accum starting at initial_accumulator_value."""

    def __init__(self, learning_rate: Any, initial_accumulator_value: float = 0.1,
                 use_locking: bool = False, name: str = "Adagrad") -> None:
        if initial_accumulator_value <= 0.0:
            raise ValueError(f"initial_accumulator_value must be positive, got "
                             f"{initial_accumulator_value}")
        super().__init__(use_locking, name)
        self._set_hyper("learning_rate", learning_rate)
        self._initial_accumulator_value = float(initial_accumulator_value)

    def _create_slots(self, var_list: list[Variable]) -> None:
        for v in var_list:
            self._constant_slot(v, self._initial_accumulator_value, "accumulator", self._name)

    def _apply_dense(self, grad: Tensor, var: Variable) -> Tensor:
        lr = self._hyper("learning_rate", var.dtype)
        accum = self.get_slot(var, "accumulator")
        accum_t = accum.assign_add(square(grad))
        return var.assign_sub(lr * grad / sqrt(accum_t))


class AdamOptimizer(Optimizer):
    """Adam with TF1's bias correction folded into the step size and epsilon outside the sqrt.

    beta1_power and beta2_power are variables (saved with checkpoints) holding beta^t for the
    step being taken; they advance after all the variable updates of a step.
    """

    def __init__(self, learning_rate: Any = 0.001, beta1: Any = 0.9, beta2: Any = 0.999,
                 epsilon: Any = 1e-8, use_locking: bool = False, name: str = "Adam") -> None:
        super().__init__(use_locking, name)
        self._set_hyper("learning_rate", learning_rate)
        self._set_hyper("beta1", beta1)
        self._set_hyper("beta2", beta2)
        self._set_hyper("epsilon", epsilon)
        self._beta_values = (beta1, beta2)

    def _create_slots(self, var_list: list[Variable]) -> None:
        first = min(var_list, key=lambda v: v.var_name)
        b1, b2 = self._beta_values
        if isinstance(b1, Tensor) or isinstance(b2, Tensor) or callable(b1) or callable(b2):
            raise TypeError("AdamOptimizer needs Python numbers for beta1 and beta2 (they "
                            "initialize the beta power variables)")
        self._create_non_slot_variable(b1, "beta1_power", first)
        self._create_non_slot_variable(b2, "beta2_power", first)
        for v in var_list:
            self._zeros_slot(v, "m", self._name)
            self._zeros_slot(v, "v", self._name)

    def _get_beta_accumulators(self, graph: Any) -> tuple[Variable, Variable]:
        return (self._get_non_slot_variable("beta1_power", graph),
                self._get_non_slot_variable("beta2_power", graph))

    def _apply_dense(self, grad: Tensor, var: Variable) -> Tensor:
        dt = var.dtype
        lr, eps = self._hyper("learning_rate", dt), self._hyper("epsilon", dt)
        beta1, beta2 = self._hyper("beta1", dt), self._hyper("beta2", dt)
        b1p, b2p = (p if p.dtype == dt else cast(p, dt)
                    for p in self._get_beta_accumulators(var.graph))
        lr_t = lr * sqrt(1 - b2p) / (1 - b1p)
        m, v = self.get_slot(var, "m"), self.get_slot(var, "v")
        m_t = m.assign(m + (grad - m) * (1 - beta1))
        v_t = v.assign(v + (square(grad) - v) * (1 - beta2))
        return var.assign_sub(lr_t * m_t / (sqrt(v_t) + eps))

    def _finish(self, update_ops: list[Node], name: str) -> Node:
        graph = update_ops[0].graph
        b1p, b2p = self._get_beta_accumulators(graph)
        with graph.control_dependencies(update_ops):
            # the variables' tensors hold beta^t from the start of the run: advance to t+1
            u1 = b1p.assign(b1p * self._hyper("beta1", b1p.dtype))
            u2 = b2p.assign(b2p * self._hyper("beta2", b2p.dtype))
        return group(*update_ops, u1, u2, name=name)
