"""The EPNAS policy network (paper 002, section 3.2) and its REINFORCE update (section 3.1)."""

import base64

import keras
import numpy as np
import tensorflow as tf

_NEG = -1e9


def returns_to_go(rewards):
    """`R_{t,n} = sum_{t'=t}^{T-1} r_{t',n}` for rewards of shape `[N, T]`."""
    rewards = np.asarray(rewards, dtype=np.float64)
    if rewards.ndim != 2:
        raise ValueError(f"`rewards` must have shape [branches, steps]. Received shape {rewards.shape}")
    return np.flip(np.cumsum(np.flip(rewards, axis=1), axis=1), axis=1)


def update_baseline(baseline, returns, decay=0.9):
    """Exponential moving average of the mean return of each step `b(X_t)`.

    `baseline` None (first episode) starts at the batch mean. Returns the new
    baseline as a list (one value per step).
    """
    mean = np.asarray(returns, dtype=np.float64).mean(axis=0)
    if baseline is None:
        return mean.tolist()
    baseline = np.asarray(baseline, dtype=np.float64)
    return (decay * baseline + (1.0 - decay) * mean).tolist()


def reinforce_loss(log_probs, advantages, num_branches):
    """`-(1/N) sum_n sum_t log pi(a_{t,n}|X_{t,n}) (R_{t,n} - b_t)`: its gradient is the g of section 3.1."""
    return -tf.reduce_sum(log_probs * tf.stop_gradient(tf.cast(advantages, log_probs.dtype))) / float(num_branches)


def _encode(array):
    array = np.array(array, dtype=np.float32, order="C")
    return {"shape": list(array.shape), "data": base64.b64encode(array.tobytes()).decode("ascii")}


def _decode(entry):
    return np.frombuffer(base64.b64decode(entry["data"]), dtype=np.float32).reshape(tuple(entry["shape"]))


class EPNASPolicy:
    """LSTM policy that reads a network and proposes scale and insert actions.

    Section 3.2 / 4.1 of EPNAS: every element (layer or branch) of the input
    network is looked up in trainable embedding tables (one per integer
    feature, summed), an LSTM with 32 units reads the sequence into a network
    embedding; a "scale LSTM" (128 units) emits one scale choice per partition
    `f = 0..F-1` of the network and an "insert LSTM" (128 units) emits, one
    step per decision, keep/insert/remove, the op and its widths/channels,
    the place (masked to the `L + 5` values of `D_L`) and the sources. Each
    decision is a `tfp.distributions.Categorical`; only the decisions that
    matter for the chosen kind (keep: none; remove: the place) enter the
    log-probability. Adam with learning rate 6e-4, every weight initialised
    uniformly in [-0.1, 0.1].

    The policy knows nothing of layer semantics: it sees integer features,
    head sizes and masks (from `keras_nas.epnas.space.EPNASSpace`).

    Args:
        feature_sizes: list of int. Vocabulary of each element feature.
        max_length: int. Most elements a network can have.
        partitions: int. `F`, scale decisions per action.
        num_scales: int. Choices of the scale table.
        heads: list of (name, size). Insert decisions, in order.
        embedding_units: int. Network-embedding LSTM units. Defaults to `32`.
        action_units: int. Scale/insert LSTM units. Defaults to `128`.
        learning_rate: float. Adam learning rate. Defaults to `6e-4`.
        init_range: float. Uniform init range. Defaults to `0.1`.
        entropy_weight: float. Entropy bonus in the loss. Defaults to `0`.
        seed: int. Initialisation seed. Defaults to `0`.

    Example:

    ```python
    import numpy as np
    from keras_nas.epnas.space import SCALES, EPNASSpace

    space = EPNASSpace("layers")
    arch = space.random_architecture(np.random.default_rng(0))
    policy = EPNASPolicy(space.feature_sizes(), space.max_layers, space.partitions,
                         len(SCALES), space.action_heads())
    action, log_prob = policy.sample(space.features(arch), space.action_masks(arch), seed=(0, 1))
    ```
    """

    def __init__(
        self,
        feature_sizes,
        max_length,
        partitions,
        num_scales,
        heads,
        embedding_units=32,
        action_units=128,
        learning_rate=6e-4,
        init_range=0.1,
        entropy_weight=0.0,
        seed=0,
    ):
        if not feature_sizes or any(int(s) < 1 for s in feature_sizes):
            raise ValueError(f"`feature_sizes` must be positive ints. Received: feature_sizes={feature_sizes!r}")
        if learning_rate <= 0:
            raise ValueError(f"`learning_rate` must be > 0. Received: learning_rate={learning_rate!r}")
        self.feature_sizes = [int(s) for s in feature_sizes]
        self.max_length = int(max_length)
        self.partitions = int(partitions)
        self.num_scales = int(num_scales)
        self.heads = [(str(n), int(s)) for n, s in heads]
        self.embedding_units = int(embedding_units)
        self.action_units = int(action_units)
        self.learning_rate = float(learning_rate)
        self.init_range = float(init_range)
        self.entropy_weight = float(entropy_weight)
        self.seed = int(seed)
        self.model = self._build()
        self.optimizer = keras.optimizers.Adam(learning_rate=self.learning_rate)
        self.optimizer.build(self.model.trainable_variables)

    def get_config(self):
        return {
            "feature_sizes": self.feature_sizes,
            "max_length": self.max_length,
            "partitions": self.partitions,
            "num_scales": self.num_scales,
            "heads": [list(h) for h in self.heads],
            "embedding_units": self.embedding_units,
            "action_units": self.action_units,
            "learning_rate": self.learning_rate,
            "init_range": self.init_range,
            "entropy_weight": self.entropy_weight,
            "seed": self.seed,
        }

    def _init(self, k):
        return keras.initializers.RandomUniform(-self.init_range, self.init_range, seed=self.seed + k)

    def _build(self):
        n_feat = len(self.feature_sizes)
        features = keras.Input((self.max_length, n_feat), dtype="int32", name="features")
        embedded = []
        for k, size in enumerate(self.feature_sizes):
            column = keras.layers.Lambda(lambda f, k=k: f[:, :, k], name=f"feature_{k}")(features)
            # +1: index 0 is padding (features are shifted by one).
            embedded.append(
                keras.layers.Embedding(size + 1, self.embedding_units, mask_zero=True,
                                       embeddings_initializer=self._init(k), name=f"embedding_{k}")(column)
            )
        x = keras.layers.Add(name="element_embedding")(embedded) if len(embedded) > 1 else embedded[0]

        def lstm(units, name, k, **kw):
            return keras.layers.LSTM(
                units, kernel_initializer=self._init(k), recurrent_initializer=self._init(k + 1),
                bias_initializer=self._init(k + 2), unit_forget_bias=False, name=name, **kw,
            )

        network = lstm(self.embedding_units, "network_lstm", 100)(x)
        step_ids = {}
        outputs = {}
        for name, steps, units, base in (("scale", self.partitions, self.action_units, 200),
                                         ("insert", len(self.heads), self.action_units, 300)):
            ids = keras.Input((steps,), dtype="int32", name=f"{name}_steps")
            step_ids[name] = ids
            position = keras.layers.Embedding(steps, self.embedding_units, embeddings_initializer=self._init(base),
                                              name=f"{name}_step_embedding")(ids)
            repeated = keras.layers.RepeatVector(steps, name=f"{name}_repeat")(network)
            seq = keras.layers.Concatenate(name=f"{name}_inputs")([repeated, position])
            outputs[name] = lstm(units, f"{name}_lstm", base + 1, return_sequences=True)(seq)
        scale_logits = keras.layers.Dense(self.num_scales, kernel_initializer=self._init(400),
                                          bias_initializer=self._init(401), name="scale_logits")(outputs["scale"])
        head_logits = []
        for k, (name, size) in enumerate(self.heads):
            step = keras.layers.Lambda(lambda h, k=k: h[:, k], name=f"insert_step_{k}")(outputs["insert"])
            head_logits.append(keras.layers.Dense(size, kernel_initializer=self._init(500 + k),
                                                  bias_initializer=self._init(600 + k), name=f"head_{name}")(step))
        return keras.Model([features, step_ids["scale"], step_ids["insert"]], [scale_logits, *head_logits],
                           name="epnas_policy")

    # -- inputs -----------------------------------------------------------

    def _inputs(self, features_list):
        batch = np.zeros((len(features_list), self.max_length, len(self.feature_sizes)), np.int32)
        for b, rows in enumerate(features_list):
            if len(rows) > self.max_length:
                raise ValueError(f"A network has {len(rows)} elements; the policy reads at most {self.max_length}.")
            if rows:
                batch[b, : len(rows)] = np.asarray(rows, np.int32) + 1
        n = len(features_list)
        return [
            tf.constant(batch),
            tf.constant(np.tile(np.arange(self.partitions, dtype=np.int32), (n, 1))),
            tf.constant(np.tile(np.arange(len(self.heads), dtype=np.int32), (n, 1))),
        ]

    def _relevance(self, actions):
        # Which insert decisions shaped the network: keep -> none, remove -> place, insert -> all.
        names = [n for n, _ in self.heads]
        out = np.zeros((len(actions), len(names)), np.float32)
        for b, action in enumerate(actions):
            kind = int(action["insert"]["kind"])
            out[b, 0] = 1.0
            if kind == 1:
                out[b, :] = 1.0
            elif kind == 2:
                out[b, names.index("place")] = 1.0
        return tf.constant(out)

    def distributions(self, features_list, masks_list, training=False):
        """`(scale, [insert heads])` as `tfp.distributions.Categorical`s for a batch of networks."""
        import tensorflow_probability as tfp  # imported here: ~1 s, only the chief's oracle needs it

        scale_logits, *head_logits = self.model(self._inputs(features_list), training=training)
        heads = []
        for k, (name, _) in enumerate(self.heads):
            mask = tf.constant(np.asarray([m[name] for m in masks_list], np.float32))
            logits = tf.where(mask > 0, head_logits[k], _NEG)
            heads.append(tfp.distributions.Categorical(logits=logits))
        return tfp.distributions.Categorical(logits=scale_logits), heads

    # -- sampling and log-probabilities -----------------------------------

    def sample(self, features, masks, seed):
        """One action for one network; returns `(action, log_prob)`.

        `seed` is a pair of ints (stateless sampling: the same seed gives the
        same action, so a resumed search proposes the same children).
        """
        scale, heads = self.distributions([features], [masks])
        seed = tf.constant([int(seed[0]) % (2**31 - 1), int(seed[1]) % (2**31 - 1)], tf.int32)
        scale_choice = scale.sample(seed=seed)[0].numpy()
        insert = {}
        for k, ((name, _), dist) in enumerate(zip(self.heads, heads)):
            insert[name] = int(dist.sample(seed=seed + k + 1)[0].numpy())
        action = {"scale": [int(s) for s in scale_choice], "insert": insert}
        return action, float(self.log_prob([features], [masks], [action])[0].numpy())

    def log_prob(self, features_list, masks_list, actions, training=False):
        """`log pi(a | X)` of each (network, action) pair, shape `[B]`."""
        scale, heads = self.distributions(features_list, masks_list, training=training)
        scale_actions = tf.constant([a["scale"] for a in actions], tf.int32)
        total = tf.reduce_sum(scale.log_prob(scale_actions), axis=-1)
        relevance = self._relevance(actions)
        for k, ((name, _), dist) in enumerate(zip(self.heads, heads)):
            chosen = tf.constant([int(a["insert"][name]) for a in actions], tf.int32)
            total += relevance[:, k] * dist.log_prob(chosen)
        return total

    def entropy(self, features_list, masks_list):
        scale, heads = self.distributions(features_list, masks_list)
        return tf.reduce_sum(scale.entropy(), axis=-1) + tf.add_n([d.entropy() for d in heads])

    def reinforce_step(self, features_list, masks_list, actions, advantages, num_branches):
        """One Adam step along the REINFORCE gradient of section 3.1.

        Args:
            features_list, masks_list, actions: one entry per (branch, step) of
                the episode: `X_{t,n}` and `a_{t,n}`.
            advantages: `R_{t,n} - b(X_t)` per entry.
            num_branches: int. `N`.

        Returns:
            dict with the `loss` and the gradient `grad_norm`.
        """
        advantages = tf.constant(np.asarray(advantages, np.float32))
        variables = self.model.trainable_variables
        with tf.GradientTape() as tape:
            log_probs = self.log_prob(features_list, masks_list, actions, training=True)
            loss = reinforce_loss(log_probs, advantages, num_branches)
            if self.entropy_weight:
                loss -= self.entropy_weight * tf.reduce_mean(self.entropy(features_list, masks_list))
        grads = tape.gradient(loss, variables)
        grads = [tf.zeros_like(v) if g is None else g for g, v in zip(grads, variables)]
        self.optimizer.apply_gradients(zip(grads, variables))
        return {"loss": float(loss.numpy()), "grad_norm": float(tf.linalg.global_norm(grads).numpy())}

    # -- state ------------------------------------------------------------

    def get_state(self):
        """Weights and Adam slots as JSON-safe base64 float32 arrays."""
        return {
            "config": self.get_config(),
            "weights": [_encode(w) for w in self.model.get_weights()],
            "optimizer": [_encode(np.asarray(v)) for v in self.optimizer.variables],
        }

    def set_state(self, state):
        saved = {k: v for k, v in state["config"].items() if k != "seed"}
        if saved != {k: v for k, v in self.get_config().items() if k != "seed"}:
            raise ValueError(
                f"The saved policy has the settings {state['config']}, this one {self.get_config()}."
            )
        self.model.set_weights([_decode(w) for w in state["weights"]])
        for variable, value in zip(self.optimizer.variables, state["optimizer"]):
            variable.assign(_decode(value).astype(keras.backend.standardize_dtype(variable.dtype)))
